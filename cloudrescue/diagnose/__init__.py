"""``cloudrescue diagnose``: why an instance is unreachable, with evidence, and which fix to run.

Without rescue (changes nothing, a few seconds): the instance's state from the API, its console
log read for the catalog's symptoms and a few built-in signatures, and probes of sshd's ports.
The modules each have one job:

- ``registry``: the names a playbook's ``symptoms:`` may use (observations, deep checks);
  plain data, imported by the playbook schema.
- ``findings``: ``Evidence``, ``Finding`` and their ranking; ``FindingSource``, what adds
  findings (the API, the console, the probes; a deep check later).
- ``console``: the console log's last boot and what it states (addresses, the OS, sshd).
- ``signatures``: console patterns (the catalog's and the built-in ones) matched on it.
- ``sshauth`` / ``probe``: TCP and SSH probing (banner, auth methods, whether keys would be
  accepted), never logging in and never sending a password.
- ``observations``: what the probes and the console show, as named observations.
- ``engine``: ``diagnose``, one diagnosis from the sources.
"""

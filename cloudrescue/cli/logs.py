"""What ``-v``, ``-vv`` and ``--debug`` show, with every secret taken out first.

Library log records (keystoneauth's requests and discovery warnings) never reach the terminal
unless asked for: errors reach it as one line, from ``cloudrescue.cli.main``. At ``-vv`` the
API requests are shown, and the secrets they carry (the rescue's ``adminPass``, passwords,
tokens, a console URL's token) are replaced by ``***`` before any handler sees them.
"""

from __future__ import annotations

import logging
import re

from cloudrescue.cli.environment import Environment

# ``=`` may come percent-encoded, once or more: a console URL carries its token in a query
# parameter's value (``vnc_auto.html?path=%3Ftoken%3D<token>``).
_SECRET_FIELD = re.compile(
    r"""(?P<key>["']?(?:adminPass|password|secret|token|X-Auth-Token|X-Subject-Token)["']?"""
    r"""\s*(?:[:=]|%(?:25)*3D)\s*)(?P<quote>["']?)(?P<value>[^"',}\s]+)(?P=quote)""",
    re.IGNORECASE,
)
LIBRARIES = ("keystoneauth", "openstack", "urllib3", "paramiko")


def redact(text: str) -> str:
    """``text`` with the value of every secret-looking field replaced by ``***``."""
    return _SECRET_FIELD.sub(lambda m: f"{m['key']}{m['quote']}***{m['quote']}", text)


class RedactSecrets(logging.Filter):
    """Rewrites each record's message without its secrets (before it is formatted)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = ()
        return True


def configure_logging(env: Environment) -> None:
    """Route log records to the user's stderr as far as ``env.verbosity`` asks, redacted."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    if env.verbosity < 2:
        root.addHandler(logging.NullHandler())  # not even Python's last-resort handler
        return
    handler = logging.StreamHandler(env.stderr)
    handler.addFilter(RedactSecrets())
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    root.addHandler(handler)
    # -vv: the API requests and what cloudrescue logs; --debug: every library's debug too.
    root.setLevel(logging.DEBUG if env.debug else logging.WARNING)
    for library in LIBRARIES:
        logging.getLogger(library).setLevel(logging.DEBUG if env.debug else logging.INFO)
    logging.getLogger("keystoneauth.session").setLevel(logging.DEBUG)  # the requests
    logging.getLogger("cloudrescue").setLevel(logging.DEBUG)

"""Fleets: many instances chosen by one selection (``selection.py``) and paced in batches with
a concurrency limit (``pacing.py``). The rules are documented in docs/fleet.md."""

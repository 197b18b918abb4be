"""The journal keeps what a run noted until a later state says otherwise."""

from __future__ import annotations

from pathlib import Path

from cloudrescue.journal import Journal


def test_a_note_stays_until_another_replaces_it(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    run = journal.start(cloud="lab", server_id="id-1", server_name="web-1", command="rescue")
    journal.update(run, "rescued", note="host key SHA256:x trusted on first use")
    journal.update(run, "unrescue-requested")
    journal.update(run, "restored")
    [entry] = journal.entries(include_restored=True)
    assert (entry.state, entry.note) == ("restored", "host key SHA256:x trusted on first use")
    journal.update(run, "restored", note="closed by unrescue")
    assert journal.entries(include_restored=True)[0].note == "closed by unrescue"

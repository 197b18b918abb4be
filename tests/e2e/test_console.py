"""``console url`` and ``console log --follow`` against the lab (issue 11, console): each
console type's URL as a user gets it (the noVNC and SPICE ones open the lab's console page in
one click), the token nowhere but on stdout, and a followed console that prints each new line
once, escaped, until Ctrl-C (exit 130) or the instance's deletion (exit 3)."""

from __future__ import annotations

import json
import queue
import re
import signal
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from cloudrescue.lab.layout import StateLayout
from cloudrescue.lab.model import LabConfig

from .conftest import E2ELab

pytestmark = pytest.mark.lab

TOKEN = r"[0-9a-f-]{36}"


def api_port(lab: E2ELab) -> int:
    return LabConfig.from_json(json.loads(StateLayout(lab.state).lab_json.read_text())).api_port


def opens(url: str, name: str) -> None:
    """The lab's console page of instance ``name`` comes up at ``url``."""
    with urllib.request.urlopen(url, timeout=10) as page:  # noqa: S310 - the lab, on 127.0.0.1
        assert page.status == 200
        assert f"Console of {name}" in page.read().decode()


def test_console_urls_open_in_one_click(lab: E2ELab) -> None:
    name = lab.add()["name"]
    base = rf"http://127\.0\.0\.1:{api_port(lab)}"

    novnc = lab.cli("console", "url", name, "--type", "novnc", "-vv")
    assert novnc.returncode == 0, novnc.stderr
    url = novnc.stdout.strip()
    assert re.fullmatch(rf"{base}/vnc_lite\.html\?path=%3Ftoken%3D{TOKEN}", url), url
    token = url.rsplit("%3D", 1)[1]
    assert "remote-consoles" in novnc.stderr and token not in novnc.stderr  # -vv: hidden
    opens(url, name)

    full = lab.cli("console", "url", name, "--vnc-html")
    assert full.returncode == 0, full.stderr
    url = full.stdout.strip()
    assert re.fullmatch(rf"{base}/vnc\.html\?autoconnect=1&path=%3Ftoken%3D{TOKEN}", url), url
    opens(url, name)

    serial = lab.cli("console", "url", name, "--type", "serial")
    assert serial.returncode == 0, serial.stderr
    assert re.fullmatch(rf"ws://127\.0\.0\.1:{api_port(lab)}/\?token={TOKEN}\n", serial.stdout)
    assert "a websocket, not a web page" in serial.stderr

    spice = lab.cli("console", "url", name, "--type", "spice", "-f", "json")
    assert spice.returncode == 0, spice.stderr
    record = json.loads(spice.stdout)
    assert (record["type"], record["protocol"], record["page"]) == (
        "spice-html5",
        "spice",
        "spice_auto.html",
    )
    assert record["url"] == record["cloud_url"]  # spice_auto.html?token=: one click already
    assert re.fullmatch(rf"{base}/spice_auto\.html\?token={TOKEN}", record["url"])
    opens(record["url"], name)


class Followed:
    """``cloudrescue console log NAME --follow`` running, its stdout read as it comes."""

    def __init__(self, lab: E2ELab, name: str) -> None:
        self.process = lab.popen("console", "log", name, "--follow", "--interval", "0.5")
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def wait_for(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.seen):
            left = deadline - time.monotonic()
            assert left > 0, f"{text!r} not printed: {self.seen[-5:]}"
            try:
                self.seen.append(self.lines.get(timeout=left))
            except queue.Empty:
                continue

    def end(self, timeout: float = 30) -> tuple[int, str]:
        """Its exit status and stderr, once it ended; what it printed is in ``seen``."""
        try:
            code = self.process.wait(timeout=timeout)
        finally:
            self.process.kill()
        assert self.process.stderr is not None
        stderr = self.process.stderr.read()
        self.reader.join(timeout=10)  # it has read up to the end of stdout
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return code, stderr


def append(console: Path, text: str) -> None:
    """A line on the instance's console, as its guest prints one."""
    with console.open("a", encoding="utf-8") as log:
        log.write(text)


def test_console_log_follow_prints_new_lines_until_ctrl_c(lab: E2ELab) -> None:
    instance: dict[str, Any] = lab.add()
    name, console = instance["name"], Path(instance["console_log"])
    followed = Followed(lab, name)
    followed.wait_for(f"{name} login:")
    append(console, "cloudrescue-follow-1 \u009b31m red\n")
    followed.wait_for("cloudrescue-follow-1")
    append(console, "cloudrescue-follow-2\n")
    followed.wait_for("cloudrescue-follow-2")
    time.sleep(1.2)  # two more reads: nothing new, nothing printed again
    followed.process.send_signal(signal.SIGINT)
    code, stderr = followed.end()
    assert code == 130, stderr
    assert stderr.splitlines()[-1] == "cloudrescue: error: interrupted", stderr
    on_disk = console.read_text().replace("\u009b", "\\x9b").splitlines()
    assert [line.rstrip("\n") for line in followed.seen] == on_disk  # each line once, escaped
    assert "\u009b" not in "".join(followed.seen)


def test_console_log_follow_ends_when_the_instance_is_deleted(lab: E2ELab) -> None:
    name = lab.add()["name"]
    followed = Followed(lab, name)
    followed.wait_for(f"{name} login:")
    lab.admin.call("DELETE", f"/instances/{name}")
    code, stderr = followed.end(timeout=60)
    assert code == 3, stderr
    assert stderr.splitlines()[-1] == (
        f"cloudrescue: error: instance {name} was deleted: its console log is gone"
    ), stderr

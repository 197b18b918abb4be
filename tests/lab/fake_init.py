"""A stand-in init for ``processes.spawn_init`` tests: ``python -m tests.lab.fake_init <plan>
<report-fd>``, where the "plan" is JSON ``{"report": {...} | null, "children": n}``.

It starts ``children`` sleeping processes, writes ``report`` on the report pipe (nothing when
null: it exits before reporting) and sleeps, listening on no port at all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> None:
    plan = json.loads(Path(argv[0]).read_text())
    for _ in range(plan.get("children", 0)):
        subprocess.Popen(["sleep", "300", argv[0]])
    fd = int(argv[1])
    if plan["report"] is None:
        sys.exit(3)
    os.write(fd, (json.dumps(plan["report"]) + "\n").encode())
    os.close(fd)
    time.sleep(300)


if __name__ == "__main__":
    main(sys.argv[1:])

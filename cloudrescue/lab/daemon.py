"""The lab daemon: ``python -m cloudrescue.lab.daemon --state-dir DIR``.

Serves the lab's OpenStack API (FastAPI + uvicorn) on ``127.0.0.1:<api_port>`` and owns the
lab runtime. Logs go to stdout (``lab up`` sends them to ``daemon.log``); SIGTERM stops
serving and leaves the instances running (``lab down`` tears them down).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import uvicorn

from cloudrescue.lab import ovhconf
from cloudrescue.lab.api.app import create_app
from cloudrescue.lab.api.auth import Identity
from cloudrescue.lab.api.service import LabService
from cloudrescue.lab.layout import StateLayout, default_state_dir
from cloudrescue.lab.model import VARIANTS, LabConfig, Variant

log = logging.getLogger("cloudrescue.lab.daemon")
GRACEFUL_SHUTDOWN_SECONDS = 10


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m cloudrescue.lab.daemon")
    parser.add_argument("--state-dir", type=Path, default=None)
    parser.add_argument("--instances", type=int, default=2, help="instances on first start")
    parser.add_argument("--variant", choices=VARIANTS, default="ext4")
    parser.add_argument(
        "--tag", action="append", default=[], help="a tag of every first instance (repeatable)"
    )
    args = parser.parse_args(argv)
    if args.instances < 0:
        parser.error("--instances must be 0 or more")
    return args


def _configure_logging() -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def build_service(
    state_dir: Path, instances: int, variant: Variant, tags: Sequence[str] = ()
) -> LabService:
    """Read what ``lab up`` wrote into ``state_dir`` and assemble the service and runtime."""
    from cloudrescue.lab.runtime import LabRuntime

    layout = StateLayout(state_dir)
    config = LabConfig.from_json(json.loads(layout.lab_json.read_text()))
    credentials = json.loads(layout.credentials.read_text())
    identity = Identity(
        lab_id=config.lab_id,
        username=credentials["username"],
        password=credentials["password"],
        project_name=credentials["project_name"],
    )
    admin_token = layout.admin_token.read_text().strip()
    return LabService(
        config,
        LabRuntime(config),
        identity,
        admin_token,
        initial_instances=instances,
        initial_tags=tags,
        variant=variant,
        ovh_account=ovhconf.read(layout.ovh_conf),
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    _configure_logging()
    state_dir = (args.state_dir or default_state_dir()).resolve()
    service = build_service(state_dir, args.instances, args.variant, args.tag)
    log.info("lab %s: API on %s", service.config.lab_id, service.endpoint)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(service),
            host="127.0.0.1",
            port=service.config.api_port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        )
    )
    server.run()
    log.info("lab %s: API stopped", service.config.lab_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())

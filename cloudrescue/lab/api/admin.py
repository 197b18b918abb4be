"""The lab's admin API ``/lab/v1`` (header ``X-Lab-Token``), as in docs/lab-design.md."""

from __future__ import annotations

import asyncio
import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from cloudrescue.errors import CloudRescueError, ConflictError, InvalidInputError, NotFoundError
from cloudrescue.lab.api import schemas
from cloudrescue.lab.api import store as st
from cloudrescue.lab.api.error_bodies import AdminError
from cloudrescue.lab.api.faults import Faults
from cloudrescue.lab.api.service import LabService, lab_of
from cloudrescue.lab.api.store import ServerRecord
from cloudrescue.lab.disk_files import GuestFile
from cloudrescue.lab.model import Family, Network, Variant

ADMIN_HEADER = "X-Lab-Token"


async def require_admin(request: Request) -> None:
    given = request.headers.get(ADMIN_HEADER, "")
    if not hmac.compare_digest(given.encode(), lab_of(request).admin_token.encode()):
        raise AdminError(401, f"missing or wrong {ADMIN_HEADER}")


router = APIRouter(prefix="/lab/v1", dependencies=[Depends(require_admin)])
Lab = Annotated[LabService, Depends(lab_of)]


# Tags and metadata as nova's create request takes them (its schemas, ``schemas.py``).
Tag = Annotated[
    str, Field(min_length=1, max_length=schemas.MAX_TAG_LENGTH, pattern=schemas.TAG_PATTERN)
]
MetadataKey = Annotated[str, Field(pattern=schemas.METADATA_KEY)]
MetadataValue = Annotated[str, Field(max_length=schemas.METADATA_VALUE_LENGTH)]


class NewInstance(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=63)
    variant: Variant | None = None
    family: Family = "debian"
    volume_backed: bool = False
    network: Network = "public"
    tags: list[Tag] = Field(default_factory=list, max_length=schemas.MAX_TAG_COUNT)
    metadata: dict[MetadataKey, MetadataValue] = Field(default_factory=dict, max_length=128)


class BreakRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scenario: str = Field(min_length=1)


class FileBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(min_length=2, max_length=4096, pattern="^/")
    content: str = Field(max_length=1024 * 1024)
    mode: int = Field(default=0o644, ge=0, le=0o7777)
    uid: int = Field(default=0, ge=0)
    gid: int = Field(default=0, ge=0)


class FilesRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    files: list[FileBody] = Field(min_length=1, max_length=64)


def view(lab: LabService, record: ServerRecord) -> dict[str, Any]:
    """``InstanceSpec`` fields plus tags, metadata, status, task_state, login user and console
    log path."""
    return {
        **record.spec.to_json(),
        "tags": list(record.tags),
        "metadata": dict(record.metadata),
        "status": record.status,
        "task_state": record.task_state,
        "user": record.spec.default_user,
        "console_log": str(lab.layout.instance(record.id).console),
    }


def _find(lab: LabService, ref: str) -> ServerRecord:
    matches = lab.store.find(ref)
    if not matches:
        raise AdminError(404, f"no instance named or with id {ref!r}")
    if len(matches) > 1:
        listed = ", ".join(record.id for record in matches)
        raise AdminError(409, f"{len(matches)} instances are named {ref!r} ({listed}): use an id")
    return matches[0]


def _runtime_error(error: Exception) -> AdminError:
    status = 500
    if isinstance(error, InvalidInputError):
        status = 400
    elif isinstance(error, NotFoundError):
        status = 404
    elif isinstance(error, ConflictError):
        status = 409
    message = error.message if isinstance(error, CloudRescueError) else str(error)
    return AdminError(status, message or type(error).__name__)


@router.get("/health")
async def health(lab: Lab) -> dict[str, Any]:
    return {"ready": lab.ready, "instances": len(lab.store.all())}


@router.get("/instances")
async def list_instances(lab: Lab) -> dict[str, Any]:
    records = sorted(lab.store.all(), key=lambda r: r.spec.index)
    return {"instances": [view(lab, record) for record in records]}


@router.post("/instances", status_code=201)
async def add_instance(
    lab: Lab, body: Annotated[NewInstance | None, Body()] = None
) -> dict[str, Any]:
    wanted = body or NewInstance()
    record = lab.new_record(
        wanted.name,
        wanted.variant,
        wanted.family,
        wanted.volume_backed,
        wanted.network,
        tags=wanted.tags,
        metadata=wanted.metadata,
    )
    try:
        await asyncio.wrap_future(lab.machine.provision(record))
    except Exception as error:
        raise _runtime_error(error) from error
    booted = lab.store.get(record.id)
    return {"instance": view(lab, booted or record)}


@router.delete("/instances/{ref}", status_code=204)
async def delete_instance(ref: str, lab: Lab) -> Response:
    record = _find(lab, ref)
    try:
        await asyncio.wrap_future(lab.machine.destroy(record.id))
    except Exception as error:
        raise _runtime_error(error) from error
    return Response(status_code=204)


@router.post("/instances/{ref}/break")
async def break_instance(ref: str, body: BreakRequest, lab: Lab) -> dict[str, Any]:
    record = _find(lab, ref)
    if record.vm_state == st.RESCUED or record.task_state is not None:
        raise AdminError(
            409, f"instance {record.spec.name} is {record.status} ({record.task_state or 'idle'})"
        )
    try:
        detail = await asyncio.wrap_future(lab.machine.break_instance(record.id, body.scenario))
    except Exception as error:
        raise _runtime_error(error) from error
    return {"instance": record.id, "scenario": body.scenario, "detail": detail}


@router.post("/instances/{ref}/files")
async def write_files(ref: str, body: FilesRequest, lab: Lab) -> dict[str, Any]:
    """Write files on the instance's disk (it reboots with them), e.g. an sshd drop-in."""
    record = _find(lab, ref)
    if record.vm_state == st.RESCUED or record.task_state is not None:
        raise AdminError(
            409, f"instance {record.spec.name} is {record.status} ({record.task_state or 'idle'})"
        )
    files = [GuestFile(**item.model_dump()) for item in body.files]
    try:
        GuestFile.check_all(files)
        detail = await asyncio.wrap_future(lab.machine.write_files(record.id, files))
    except Exception as error:
        raise _runtime_error(error) from error
    return {"instance": record.id, "detail": detail}


@router.get("/instances/{ref}/admin-pass")
async def admin_pass(ref: str, lab: Lab) -> dict[str, Any]:
    """The ``adminPass`` the instance's last rescue request carried (None: none, or no rescue
    since the daemon started): for tests that check where the client's password went."""
    record = _find(lab, ref)
    return {"instance": record.id, "admin_pass": lab.admin_passes.get(record.id)}


@router.post("/bastion")
async def make_bastion(lab: Lab) -> dict[str, Any]:
    """The lab's bastion and private network, made the first time."""
    try:
        info = await asyncio.to_thread(lab.make_bastion)
    except AdminError:
        raise
    except Exception as error:
        raise _runtime_error(error) from error
    return {"bastion": info.to_json()}


@router.get("/bastion")
async def get_bastion(lab: Lab) -> dict[str, Any]:
    info = lab.bastion()
    if info is None:
        raise AdminError(404, "this lab has no bastion (POST /lab/v1/bastion makes it)")
    return {"bastion": info.to_json()}


@router.post("/instances/{ref}/cut-ssh")
async def cut_ssh(ref: str, lab: Lab) -> dict[str, Any]:
    record = _find(lab, ref)
    try:
        cut = await asyncio.wrap_future(lab.machine.cut_ssh(record.id))
    except Exception as error:
        raise _runtime_error(error) from error
    return {"cut": cut}


@router.get("/faults")
async def get_faults(lab: Lab) -> dict[str, Any]:
    return lab.faults.current()


@router.put("/faults")
async def put_faults(body: Faults, lab: Lab) -> dict[str, Any]:
    lab.faults.merge(body)
    return lab.faults.current()


@router.delete("/faults")
async def clear_faults(lab: Lab) -> JSONResponse:
    lab.faults.clear()
    return JSONResponse(lab.faults.current())

"""Request schemas written like nova's, and a validator that words its errors like nova."""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Iterator
from typing import Any

import jsonschema
from jsonschema import Draft202012Validator
from jsonschema.protocols import Validator

from cloudrescue.lab.api.error_bodies import NovaError

MAX_TAG_LENGTH = 60
MAX_TAG_COUNT = 50

_FORMATS = jsonschema.FormatChecker(formats=())


@_FORMATS.checks("uuid")
def _is_uuid(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        return uuid.UUID(value).hex == value.replace("-", "").lower()
    except ValueError:
        return False


@_FORMATS.checks("regex")
def _is_regex(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not value:
        return False
    try:
        re.compile(value)
    except re.error:
        return False
    return True


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            try:
                return float(value)
            except ValueError:
                return None
    return None


def _bound(keyword: str) -> Any:
    """``minimum`` / ``maximum`` that also apply to numeric strings (as nova's do)."""
    original = Draft202012Validator.VALIDATORS[keyword]

    def check(
        validator: Validator, limit: float, instance: object, schema: dict[str, Any]
    ) -> Iterator[jsonschema.ValidationError]:
        value = _number(instance)
        if value is None:
            return iter(())
        return iter(original(validator, limit, value, schema) or ())

    return check


_NovaValidator = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
    Draft202012Validator, {"minimum": _bound("minimum"), "maximum": _bound("maximum")}
)


def _unexpected_query_parameters(schema: dict[str, Any], query: object) -> None:
    """Nova's wording for query parameters a strict (2.75+) query schema does not know."""
    if schema.get("additionalProperties", True) or not isinstance(query, dict):
        return
    patterns = [re.compile(p) for p in schema.get("patternProperties", {})]
    extra = [
        name
        for name in query
        if name not in schema["properties"] and not any(p.search(name) for p in patterns)
    ]
    if extra:
        verb = "was" if len(extra) == 1 else "were"
        listed = ", ".join(repr(name) for name in extra)
        raise NovaError(400, f"Additional properties are not allowed ({listed} {verb} unexpected)")


def validate(schema: dict[str, Any], body: object, *, query: bool = False) -> None:
    """Raise nova's 400 ("Invalid input for field/attribute ...") when ``body`` does not fit."""
    if query:
        _unexpected_query_parameters(schema, body)
        schema = {**schema, "additionalProperties": True}
    validator = _NovaValidator(schema, format_checker=_FORMATS)
    for error in validator.iter_errors(body):
        if error.path:
            if query:
                name = error.path.popleft()
                detail = (
                    f"Invalid input for query parameters {name}. "
                    f"Value: {error.instance}. {error.message}"
                )
            else:
                name = error.path.pop()
                detail = (
                    f"Invalid input for field/attribute {name}. "
                    f"Value: {error.instance}. {error.message}"
                )
        else:
            detail = error.message
        raise NovaError(400, detail)


def _action(name: str, value: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {name: value},
        "required": [name],
        "additionalProperties": False,
    }


def _multi(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item}


ADMIN_PASSWORD: dict[str, Any] = {"type": "string"}
IMAGE_ID: dict[str, Any] = {"type": "string", "format": "uuid"}

RESCUE = _action(
    "rescue",
    {
        "type": ["object", "null"],
        "properties": {"adminPass": ADMIN_PASSWORD, "rescue_image_ref": IMAGE_ID},
        "additionalProperties": False,
    },
)
UNRESCUE = _action("unrescue", {})
START = _action("os-start", {})
STOP = _action("os-stop", {})
REBOOT = _action(
    "reboot",
    {
        "type": "object",
        "properties": {
            "type": {"type": "string", "enum": ["HARD", "Hard", "hard", "SOFT", "Soft", "soft"]}
        },
        "required": ["type"],
        "additionalProperties": False,
    },
)
RESET_STATE = _action(
    "os-resetState",
    {
        "type": "object",
        "properties": {"state": {"type": "string", "enum": ["active", "error"]}},
        "required": ["state"],
        "additionalProperties": False,
    },
)
CONSOLE_OUTPUT = _action(
    "os-getConsoleOutput",
    {
        "type": "object",
        "properties": {
            "length": {
                "type": ["integer", "string", "null"],
                "pattern": "^-?[0-9]+$",
                "minimum": -1,
            }
        },
        "additionalProperties": False,
    },
)
GET_VNC_CONSOLE = _action(
    "os-getVNCConsole",
    {
        "type": "object",
        "properties": {"type": {"type": "string", "enum": ["novnc", "xvpvnc"]}},
        "required": ["type"],
        "additionalProperties": False,
    },
)

_REMOTE_CONSOLE_V26: dict[str, Any] = _action(
    "remote_console",
    {
        "type": "object",
        "properties": {
            "protocol": {"type": "string", "enum": ["vnc", "spice", "serial", "rdp"]},
            "type": {
                "type": "string",
                "enum": ["novnc", "xvpvnc", "spice-html5", "serial", "rdp-html5"],
            },
        },
        "required": ["protocol", "type"],
        "additionalProperties": False,
    },
)


def remote_console_schema(mks: bool, spice_direct: bool) -> dict[str, Any]:
    """The remote-consoles body schema: ``mks`` from 2.8, ``spice-direct`` from 2.99."""
    schema = copy.deepcopy(_REMOTE_CONSOLE_V26)
    properties = schema["properties"]["remote_console"]["properties"]
    if mks:
        properties["protocol"]["enum"].append("mks")
        properties["type"]["enum"].append("webmks")
    if spice_direct:
        properties["type"]["enum"].append("spice-direct")
    return schema


METADATA_KEY = "^[a-zA-Z0-9-_:. ]{1,255}$"
METADATA_VALUE_LENGTH = 255
_METADATA: dict[str, Any] = {
    "type": "object",
    "patternProperties": {METADATA_KEY: {"type": "string", "maxLength": METADATA_VALUE_LENGTH}},
    "additionalProperties": False,
}
METADATA = {
    "type": "object",
    "properties": {"metadata": _METADATA},
    "required": ["metadata"],
    "additionalProperties": False,
}
METADATA_ITEM = {
    "type": "object",
    "properties": {"meta": {**_METADATA, "minProperties": 1, "maxProperties": 1}},
    "required": ["meta"],
    "additionalProperties": False,
}

TAG_PATTERN = "^[^,/]*$"
TAG: dict[str, Any] = {
    "type": "string",
    "pattern": TAG_PATTERN,
    "minLength": 1,
    "maxLength": MAX_TAG_LENGTH,
}
TAGS = {
    "type": "object",
    "properties": {"tags": {"type": "array", "items": TAG, "maxItems": MAX_TAG_COUNT}},
    "required": ["tags"],
    "additionalProperties": False,
}
TAG_BODY: dict[str, Any] = {"type": "null"}

_QUERY = _multi({"type": "string"})
_QUERY_REGEX = _multi({"type": "string", "format": "regex"})
_NON_NEGATIVE_INT = {
    "type": ["integer", "string"],
    "pattern": "^[0-9]*$",
    "minimum": 0,
    "minLength": 1,
}
_SERVER_QUERY_PLAIN = (
    "user_id", "project_id", "tenant_id", "launch_index", "image_ref", "image", "vm_state",
    "task_state", "host", "uuid", "sort_key", "sort_dir", "all_tenants", "soft_deleted",
    "deleted", "status", "changes-since", "block_device_mapping", "services", "metadata",
    "system_metadata", "info_cache", "security_groups", "pci_devices", "marker",
)  # fmt: skip
_SERVER_QUERY_REGEX = (
    "kernel_id", "ramdisk_id", "hostname", "key_name", "power_state", "node", "flavor",
    "reservation_id", "launched_at", "terminated_at", "availability_zone", "name",
    "display_name", "description", "display_description", "locked_by", "root_device_name",
    "config_drive", "access_ip_v4", "access_ip_v6", "auto_disk_config", "progress", "ip", "ip6",
    "created_at",
)  # fmt: skip
TAG_FILTERS = ("tags", "tags-any", "not-tags", "not-tags-any")


def server_list_query(
    *, tags: bool, changes_before: bool, locked: bool, strict: bool
) -> dict[str, Any]:
    """The query schema of ``GET /servers[/detail]`` at a microversion (see nova's)."""
    properties: dict[str, Any] = {name: _QUERY for name in _SERVER_QUERY_PLAIN}
    properties.update({name: _QUERY_REGEX for name in _SERVER_QUERY_REGEX})
    properties["limit"] = _multi(_NON_NEGATIVE_INT)
    if tags:
        properties.update({name: _QUERY_REGEX for name in TAG_FILTERS})
    if changes_before:
        properties["changes-before"] = _QUERY
    if locked:
        properties["locked"] = _QUERY
    return {
        "type": "object",
        "properties": properties,
        "additionalProperties": not strict,
        "patternProperties": {"^_": _QUERY},
    }


FLAVOR_QUERY_STRICT = {
    "type": "object",
    "properties": {
        name: _QUERY
        for name in ("sort_key", "sort_dir", "is_public", "minRam", "minDisk", "marker")
    }
    | {"limit": _multi(_NON_NEGATIVE_INT)},
    "additionalProperties": False,
}

"""Compute API microversions, read from the request headers the way nova reads them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from cloudrescue.lab.api.error_bodies import NovaError

HEADER = "OpenStack-API-Version"
LEGACY_HEADER = "X-OpenStack-Nova-API-Version"
SERVICE = "compute"
_FORMAT = re.compile(r"^([1-9]\d*)\.([1-9]\d*|0)$")


@dataclass(frozen=True, order=True)
class Version:
    """A ``major.minor`` compute API version."""

    major: int
    minor: int

    @classmethod
    def parse(cls, text: str) -> Version:
        match = _FORMAT.match(text)
        if match is None:
            raise ValueError(text)
        return cls(int(match.group(1)), int(match.group(2)))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"

    def at_least(self, text: str) -> bool:
        return self >= Version.parse(text)


MIN_VERSION = Version(2, 1)
MAX_VERSION = Version(2, 100)


def _header_value(headers: Mapping[str, str]) -> str | None:
    """The compute entry of ``OpenStack-API-Version``, else the legacy header."""
    combined = headers.get(HEADER)
    if combined:
        for entry in combined.split(","):
            service, _, value = entry.strip().partition(" ")
            if service.lower() == SERVICE:
                return value.strip()
    legacy = headers.get(LEGACY_HEADER)
    return legacy.strip() if legacy else None


def requested_version(headers: Mapping[str, str]) -> Version:
    """The version a request asks for: 2.1 without a header, 400 / 406 like nova when bad."""
    value = _header_value(headers)
    if value is None:
        return MIN_VERSION
    if value.lower() == "latest":
        return MAX_VERSION
    try:
        version = Version.parse(value)
    except ValueError:
        raise NovaError(
            400,
            f"API Version String {value} is of invalid format. "
            "Must be of format MajorNum.MinorNum.",
        ) from None
    if not MIN_VERSION <= version <= MAX_VERSION:
        raise NovaError(
            406,
            f"Version {version} is not supported by the API. "
            f"Minimum is {MIN_VERSION} and maximum is {MAX_VERSION}.",
        )
    return version


def response_headers(version: Version) -> dict[str, str]:
    """Headers nova adds to every versioned answer."""
    return {
        HEADER: f"{SERVICE} {version}",
        LEGACY_HEADER: str(version),
        "Vary": f"{HEADER}, {LEGACY_HEADER}",
    }

"""Request parameter types the routes share, bounded so that no value a client can send reaches the database
or the clock arithmetic out of range (a 64-bit id overflow or a year-1 datetime was a 500; now a 422)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime

from pipeline.domain import PlaceText

MAX_ID = 2**63 - 1  # BIGINT on PostgreSQL, INTEGER on SQLite: both signed 64-bit

EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)  # far enough from 9999 that converting to any zone cannot overflow


def _in_range(value: datetime) -> datetime:
    try:
        ok = EARLIEST <= value.astimezone(UTC) < LATEST
    except OverflowError:
        ok = False
    if not ok:
        raise ValueError(f"must be between {EARLIEST:%Y-%m-%d} and 8999-12-31 (UTC), got {value.isoformat()}")
    return value


Timestamp = Annotated[AwareDatetime, AfterValidator(_in_range)]
"""An ISO-8601 time with a zone, within years 1900-8999."""

__all__ = ["MAX_ID", "PlaceText", "Timestamp"]

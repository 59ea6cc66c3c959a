"""Request parameter types the routes share, bounded so that no value a client can send reaches the database
or the clock arithmetic out of range (a 64-bit id overflow or a year-1 datetime was a 500; now a 422)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, WithJsonSchema

from pipeline.domain import PlaceText

MAX_ID = 2**63 - 1  # BIGINT on PostgreSQL, INTEGER on SQLite: both signed 64-bit
# The largest offset a page may start at: the largest integer every JSON reader holds exactly (JavaScript's
# Number.MAX_SAFE_INTEGER). Above 2**53 a schema's `maximum` compared as a float lets a larger value pass that
# the server then refuses (schemathesis found 2**62 + 95 "valid").
MAX_OFFSET = 2**53 - 1

# Years 1900-8999 as written: far enough from 1 and 9999 that converting to any zone cannot overflow.
_ISO = re.compile(r"^(19|[2-8][0-9])[0-9]{2}-[0-9]{2}-[0-9]{2}[Tt ]")
TIMESTAMP_PATTERN = _ISO.pattern


def _iso_text(value: Any) -> Any:
    """Only ISO-8601 text: pydantic would also read a bare number ('0.05') as seconds since 1970."""
    if isinstance(value, str) and not _ISO.match(value):
        if re.match(r"^[0-9]{4}-", value):
            raise ValueError(f"the year must be between 1900 and 8999, got {value!r}")
        raise ValueError(f"not an ISO-8601 time with a zone (e.g. 2026-11-21T09:00:00+08:00): {value!r}")
    return value


def _in_range(value: datetime) -> datetime:
    if not 1900 <= value.year <= 8999:
        raise ValueError(f"the year must be between 1900 and 8999, got {value.isoformat()}")
    return value


Timestamp = Annotated[
    AwareDatetime, BeforeValidator(_iso_text), AfterValidator(_in_range),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": TIMESTAMP_PATTERN}),
]
"""An ISO-8601 time with a zone, in the years 1900-8999."""

__all__ = ["MAX_ID", "MAX_OFFSET", "PlaceText", "Timestamp"]

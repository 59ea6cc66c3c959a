"""The ledger's time: every time it records is injected or read from one clock, and must carry its zone."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from .errors import LedgerError

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime, what: str) -> datetime:
    """`value`, or a LedgerError if it has no zone: a time without one cannot be placed on the timeline."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise LedgerError(f"{what} {value.isoformat()} has no time zone; give timezone-aware times (e.g. +08:00)")
    return value


def resolve(clock: Clock, at: datetime | None) -> datetime:
    """The time of a change in UTC: `at` when given, else the clock's now."""
    return (aware(at, "time") if at is not None else aware(clock(), "clock time")).astimezone(UTC)

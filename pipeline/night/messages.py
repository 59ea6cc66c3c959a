"""What a worker sends the ledger writer, in order, per unit. Small picklable values (Ray and multiprocessing)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ..domain import IncidentReport
from ..frame_step import VerifyInput
from .units import Counts


@dataclass
class FrameOut:
    """One frame's incident reports (with the evidence bytes written for them) and its view for auto-verification."""

    unit: str
    source: str
    reports: list[IncidentReport]
    evidence: dict[str, bytes] = field(default_factory=dict)
    verify: VerifyInput | None = None


@dataclass
class Checkpoint:
    """How far the unit got in one source, and the engine state there; everything sent before it is covered."""

    unit: str
    item: int
    source: str
    fingerprint: str
    status: str  # partial | done | failed
    position: float
    counts: Counts
    state: bytes
    error: str | None = None
    frames_read: int | None = None
    used: int = 0  # frames of this source handled this run, up to here (the night report's per-file count)
    seen: tuple[datetime, datetime] | None = None  # first and last frame time since the last checkpoint
    read: tuple[str, ...] = ()  # images (snapshots, patrol photos) used since the last checkpoint
    kind: str = "video"  # the source's kind (units.Source.kind)


@dataclass
class Problem:
    """A file the worker could not use (a bad snapshot or patrol photo); the rest goes on."""

    unit: str
    path: str
    error: str


@dataclass
class UnitDone:
    unit: str


@dataclass
class UnitFailed:
    unit: str
    error: str


Message = FrameOut | Checkpoint | Problem | UnitDone | UnitFailed

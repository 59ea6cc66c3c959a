"""What the night job has to do: units, each a sequence of sources, and the settings every worker shares.

A unit is the smallest piece of work with its own engine state: one camera (its videos in time order, then its
snapshots) or the patrol photos (one unit, because patrol dedup by place and time is global). Progress is kept
per source: a video, a camera's snapshot folder, or the patrol folder.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from ..detect.streams import parse_streams
from ..domain import GeoPoint

PATROL = "patrol"  # the patrol photos' unit, and their folder in the footage


@dataclass(frozen=True)
class NightSettings:
    """The detector and sampling settings of a night, the same in every worker."""

    model: str | None = None  # model name, folder or .onnx; None: models/CURRENT
    model_name: str | None = None  # the model's name, put in each frame's meta (evidence metadata names it)
    backend: str = "auto"  # as `streetorder run` (a library caller and the command serve the same model the same way)
    conf: float = 0.25
    threads: int | None = None  # inference threads per detector stream; None: the worker's cores shared out between its streams
    streams: int | str = "auto"  # detector batches run at once per worker, beside the decoding (`detect.streams`); auto: from the cores; 0: in the decoding thread
    every_s: float = 2.0  # seconds of video between sampled frames
    batch: int = 4  # frames per detector batch
    checkpoint_s: float = 300.0  # footage seconds between progress records inside a source
    gate: bool = True  # each camera's change gate (`--no-gate`: the detector on every sampled frame)

    def __post_init__(self) -> None:
        if self.every_s <= 0 or self.batch < 1 or self.checkpoint_s <= 0:
            raise ValueError("every, batch and checkpoint interval must be positive")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be at least 1, got {self.threads}")
        object.__setattr__(self, "streams", parse_streams(self.streams, minimum=0))


@dataclass(frozen=True)
class Source:
    """One video, one camera's snapshots, or the patrol photos: what progress is recorded for."""

    key: str  # the video's path, or the folder of the images
    kind: Literal["video", "stills", "photos"]
    fingerprint: str  # a changed file is done again, not resumed
    start: datetime | None = None  # a video's start time
    images: tuple[str, ...] = ()  # a camera's snapshots
    photos: tuple[tuple[datetime, str, GeoPoint | None], ...] = ()  # patrol photos: (capture time, path, gps), in time order

    @property
    def files(self) -> int:
        return 1 if self.kind == "video" else len(self.images) + len(self.photos)


@dataclass(frozen=True)
class Unit:
    id: str  # camera id, or "patrol"
    sources: tuple[Source, ...]
    watched: bool = False  # the camera has dispatched cases to re-check (auto-verification): send each frame's view


@dataclass(frozen=True)
class Resume:
    """Where a unit continues: source `item` at `position`, with the engine state saved there."""

    item: int
    position: float = 0.0
    state: bytes | None = None
    frames: int = 0  # frames already handled in that source
    state_of: str | None = None  # the source whose progress row holds `state` (read as the job starts)


@dataclass(frozen=True)
class Job:
    unit: Unit
    resume: Resume | None = None


def group_fingerprint(entries: list[tuple[str, int]]) -> str:
    return hashlib.sha256("\n".join(f"{p}\t{n}" for p, n in entries).encode()).hexdigest()


@dataclass
class Counts:
    """What the engine saw, summed between two progress records."""

    frames: int = 0
    photos: int = 0
    violations: int = 0
    incidents_opened: int = 0
    incidents_ended: int = 0

    def add(self, other: Counts) -> None:
        for k, v in other.__dict__.items():
            setattr(self, k, getattr(self, k) + v)


__all__ = ["Counts", "Job", "NightSettings", "Resume", "Source", "Unit", "group_fingerprint"]

"""Each camera's engine state in the ledger (table `camera_state`), so it outlives the process that holds it.

The engine keeps a camera's tracks, dwell timers and open incidents in memory; lost on a restart, an incident
would open only a full `min_dwell_s` after the service came back. A `CameraCheckpoint` is one camera's state
(`Engine.snapshot_camera`) as of one frame; `CameraStateBook.save` writes it inside the caller's transaction,
the one that posts the reports of that frame (as the night job's `night_progress` does), so the ledger's cases
and the state that reported them always agree: a restored incident is not reported again as new.

Versions: a checkpoint's `version` grows with the camera's frames (`version_of`: the frame time in
microseconds; frames of a camera are processed in time order, each once). A save whose version is not newer
than the stored one is refused and writes nothing, so a node that comes back with stale state (a camera moved
on to another node meanwhile) never overwrites newer state, and a retried save is harmless.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from ..db.engine import Database
from ..db.tables.intake import CameraState


def version_of(frame_at: datetime) -> int:
    """The version of a checkpoint taken after the frame at `frame_at`: microseconds since the epoch (UTC)."""
    if frame_at.tzinfo is None or frame_at.utcoffset() is None:
        raise ValueError(f"naive frame time {frame_at.isoformat()}: a checkpoint needs a timezone-aware time")
    delta = frame_at.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@dataclass(frozen=True)
class CameraCheckpoint:
    """One camera's engine state (`blob`, from `Engine.snapshot_camera`) as of its frame at `frame_at`."""

    camera_id: str
    version: int
    frame_at: datetime
    blob: bytes

    @classmethod
    def of(cls, camera_id: str, frame_at: datetime, blob: bytes) -> CameraCheckpoint:
        """A checkpoint versioned by its frame time (`version_of`)."""
        return cls(camera_id, version_of(frame_at), frame_at, blob)


class CameraStateBook:
    """Reads and writes `camera_state`: the newest checkpoint of each camera."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def load(self, camera_id: str) -> CameraCheckpoint | None:
        with self.db.transaction() as s:
            row = s.get(CameraState, camera_id)
            return _checkpoint(row) if row is not None else None

    def load_all(self) -> dict[str, CameraCheckpoint]:
        """camera id -> its newest checkpoint (read once, as a service starts or its ledger comes back)."""
        with self.db.transaction() as s:
            return {row.camera_id: _checkpoint(row) for row in s.scalars(select(CameraState))}

    def save(self, s: Session, checkpoint: CameraCheckpoint) -> bool:
        """Write `checkpoint` in the caller's transaction `s` if its version is newer than the stored one; returns
        whether it was written (False: a newer or the same version is stored, and nothing was written).

        One statement (an upsert whose update only applies to an older row), so two writers racing for a camera
        cannot both win, whichever commits first."""
        if not isinstance(checkpoint.version, int) or checkpoint.version < 0:
            raise ValueError(f"camera '{checkpoint.camera_id}': a checkpoint version is a non-negative integer, not {checkpoint.version!r}")
        values = {
            "camera_id": checkpoint.camera_id, "version": checkpoint.version, "frame_at": checkpoint.frame_at,
            "state": checkpoint.blob, "updated_at": datetime.now(UTC),
        }
        dialect = s.get_bind().dialect.name
        insert = {"postgresql": pg_insert, "sqlite": sqlite_insert}.get(dialect)
        if insert is None:
            raise NotImplementedError(f"camera state on {dialect}: the ledger runs on PostgreSQL or SQLite")
        stmt = insert(CameraState).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[CameraState.camera_id],
            set_={k: stmt.excluded[k] for k in ("version", "frame_at", "state", "updated_at")},
            where=CameraState.version < stmt.excluded.version,
        ).returning(CameraState.camera_id)
        return s.execute(stmt).first() is not None


def _checkpoint(row: CameraState) -> CameraCheckpoint:
    return CameraCheckpoint(row.camera_id, row.version, row.frame_at, row.state)

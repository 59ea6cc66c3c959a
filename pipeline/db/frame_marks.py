"""Per-camera frame order that survives a restart: the newest frame time each camera was processed at.

The engine refuses a frame older than the camera's last one (the tracker measures dwell on frame time); kept
only in memory, a restart would accept frames already processed and count their violations twice.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from .engine import Database
from .tables.intake import CameraFrame


def last_frames(db: Database) -> dict[str, datetime]:
    """camera id → newest frame time stored."""
    with db.transaction() as s:
        return {row.camera_id: row.last_frame_at for row in s.scalars(select(CameraFrame))}


def mark_frames_in(s: Session, marks: dict[str, datetime], *, now: datetime | None = None) -> None:
    """Store each camera's frame time if newer than the stored one (a replayed, older mark changes nothing), in
    the caller's transaction (the one that posts those frames' reports and the cameras' states)."""
    if not marks:
        return
    now = now or datetime.now(UTC)
    rows = {r.camera_id: r for r in s.scalars(select(CameraFrame).where(CameraFrame.camera_id.in_(list(marks))).with_for_update())}
    for camera_id, at in marks.items():
        row = rows.get(camera_id)
        if row is None:
            s.add(CameraFrame(camera_id=camera_id, last_frame_at=at, updated_at=now))
        elif at > row.last_frame_at:
            row.last_frame_at, row.updated_at = at, now

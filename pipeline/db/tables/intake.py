"""Durable intake (issue 8): per-camera frame order and quarantined reports; `pipeline.db.frame_marks` and
`pipeline.db.quarantine` read and write them. Each camera's engine state (issue 23), read and written by
`pipeline.live.camera_state`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, Id


class CameraFrame(Base):
    """The newest frame time each camera has been processed at, so a restart still refuses frames already seen."""

    __tablename__ = "camera_frames"

    camera_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    last_frame_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class QuarantinedReport(Base):
    """An incident report the ledger refused (invalid data): kept with the reason for an admin instead of
    blocking the reports queued behind it. `payload` is the report as JSON, exactly as it was queued."""

    __tablename__ = "report_quarantine"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    incident_id: Mapped[str] = mapped_column(String(200), index=True)
    camera_id: Mapped[str | None] = mapped_column(String())
    payload: Mapped[str] = mapped_column(Text)
    error_type: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text)
    queued_at: Mapped[datetime] = mapped_column(comment="when the service first had the report")
    quarantined_at: Mapped[datetime]


class CameraState(Base):
    """The newest checkpoint of one camera's engine state (tracks, dwell timers, open incidents and what was
    reported of them), written in the transaction that posts the reports of its frame, or every few seconds of
    frame time, so that a restarted service or another node goes on where the camera was.

    `version` only grows: a save whose version is not newer than the stored one (a node come back with stale
    state) is refused."""

    __tablename__ = "camera_state"

    camera_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, comment="grows with every checkpoint of the camera (its frame time in microseconds)")
    frame_at: Mapped[datetime] = mapped_column(comment="the frame time the state is as of")
    state: Mapped[bytes] = mapped_column(LargeBinary, comment="Engine.snapshot_camera: compressed pickle")
    updated_at: Mapped[datetime]

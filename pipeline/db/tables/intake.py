"""Durable intake (issue 8): per-camera frame order and quarantined reports; `pipeline.db.frame_marks` and
`pipeline.db.quarantine` read and write them. Each camera's engine state (issue 23), read and written by
`pipeline.live.camera_state`; cameras whose stream went dark (issue 23, `pipeline.live.outages`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, LargeBinary, String, Text, text
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


class CameraOutage(Base):
    """A camera whose stream stayed down longer than its `offline_after_s`: a blind 点位 for that time. One row per
    outage, written once when it is declared and closed (`ended_at`) by the first picture after it; the open one
    has `ended_at` null. `pipeline.live.outages` reads and writes them."""

    __tablename__ = "camera_outages"
    __table_args__ = (
        Index(None, "district", "down_since"),
        # at most one open outage per camera, also when two threads or a restarted service declare it at once
        Index("uq_camera_outages_open", "camera_id", unique=True, postgresql_where=text("ended_at IS NULL"), sqlite_where=text("ended_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    camera_id: Mapped[str] = mapped_column(String(200))
    district: Mapped[str] = mapped_column(String())
    street: Mapped[str] = mapped_column(String())
    point: Mapped[str] = mapped_column(String())
    owner: Mapped[str | None] = mapped_column(String())
    stream_kind: Mapped[str] = mapped_column(String(8), comment="rtsp | http")
    down_since: Mapped[datetime] = mapped_column(comment="the last picture before the outage, or the service's start when there was none")
    reported_at: Mapped[datetime] = mapped_column(comment="when it was declared offline (down_since + offline_after_s)")
    ended_at: Mapped[datetime | None] = mapped_column(comment="the first picture after it; null while the camera is dark")
    error: Mapped[str | None] = mapped_column(Text, comment="why the stream failed, credentials redacted")

"""The night job's progress (issue 7: resume after a crash); `pipeline.night.progress` reads and writes it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base


class NightProgress(Base):
    """How far the night job got in one source: a video, a camera's snapshots, or the patrol photos.

    Written in the same transaction as the cases posted up to that point (`CaseStore.post_incidents`), so
    after a crash the ledger and the progress agree. `state` holds the pickled engine state of the source's
    unit (a camera, or the patrol) as it was at `position`; only the unit's latest row keeps it.
    """

    __tablename__ = "night_progress"
    __table_args__ = (Index(None, "run_key", "unit"),)

    run_key: Mapped[str] = mapped_column(String(64), primary_key=True, comment="hash of the footage folder and every setting that changes the outcome")
    source: Mapped[str] = mapped_column(String(), primary_key=True, comment="the video's path, or the image group's folder")
    unit: Mapped[str] = mapped_column(String(), comment="camera id, or 'patrol'")
    item: Mapped[int] = mapped_column(Integer, comment="place of the source in its unit's order")
    fingerprint: Mapped[str] = mapped_column(String(64), comment="size of the video, or hash of the group's names and sizes")
    status: Mapped[str] = mapped_column(String(12), comment="partial | done | failed")
    position: Mapped[float] = mapped_column(Float, comment="video seconds (or images done) from which to continue")
    frames: Mapped[int] = mapped_column(Integer, comment="frames (or photos) handled in this source so far")
    error: Mapped[str | None] = mapped_column(Text)
    state: Mapped[bytes | None] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime]

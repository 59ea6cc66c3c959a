"""The ledger's tables as SQLAlchemy 2 typed ORM classes. Alembic migrations in `migrations/` create them.

Keep these and the migrations in step: `tests/cases/test_db.py` fails if they drift apart.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Float, ForeignKey, Index, Integer, LargeBinary, MetaData, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from ..domain import GeoPoint, Location

# Free text from cameras and people (names, ids) is unbounded String(); short codes we control are sized.
# Integer on SQLite, where only INTEGER PRIMARY KEY autoincrements; 64-bit on PostgreSQL.
Id = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out on every backend (SQLite keeps no zone, so it stores naive UTC).

    A naive datetime is refused: a camera's local time without a zone cannot be placed on the timeline.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} given; the ledger needs timezone-aware times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map = {datetime: UtcDateTime(), dict[str, Any]: JSON(), list[float]: JSON()}


class Case(Base):
    """One problem at one spot, as work for people: where, what, who, how far along, and since when."""

    __tablename__ = "cases"
    __table_args__ = (
        Index(None, "type", "status", "district", "point"),
        Index(None, "camera_id", "status"),
        Index(None, "status", "deadline_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    type: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))
    severity: Mapped[int] = mapped_column(Integer)
    count: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    camera_id: Mapped[str | None] = mapped_column(String())
    zone_id: Mapped[str | None] = mapped_column(String())
    box: Mapped[list[float] | None] = mapped_column(comment="xyxy pixels on camera_id's frame")
    district: Mapped[str] = mapped_column(String())
    street: Mapped[str] = mapped_column(String())
    point: Mapped[str] = mapped_column(String())
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    owner: Mapped[str | None] = mapped_column(String())
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    dispatched_at: Mapped[datetime | None]
    deadline_at: Mapped[datetime | None]
    rectified_at: Mapped[datetime | None]
    verified_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    rejected_at: Mapped[datetime | None]
    reopened_at: Mapped[datetime | None]
    escalated_at: Mapped[datetime | None]
    relapse_count: Mapped[int] = mapped_column(Integer, default=0)
    escalation_count: Mapped[int] = mapped_column(Integer, default=0)
    revision: Mapped[int] = mapped_column(Integer, default=1, comment="bumped on every change; outbound messages carry it")

    incidents: Mapped[list[CaseIncident]] = relationship(back_populates="case", order_by="CaseIncident.posted_at")
    events: Mapped[list[CaseEvent]] = relationship(back_populates="case", order_by="CaseEvent.id")
    evidence: Mapped[list[CaseEvidence]] = relationship(back_populates="case", order_by="CaseEvidence.id")

    @property
    def location(self) -> Location:
        """The case's place as the domain's `Location`, rebuilt from its columns (gps only when both lat and lon are set)."""
        gps = GeoPoint(lat=self.lat, lon=self.lon) if self.lat is not None and self.lon is not None else None
        return Location(district=self.district, street=self.street, point=self.point, gps=gps)

    @location.setter
    def location(self, loc: Location) -> None:
        for column, value in location_columns(loc).items():
            setattr(self, column, value)


def location_columns(loc: Location) -> dict[str, Any]:
    """A `Location` as the case columns that store it: the one place its fields are mapped to storage."""
    return {"district": loc.district, "street": loc.street, "point": loc.point, "lat": loc.gps.lat if loc.gps else None, "lon": loc.gps.lon if loc.gps else None}


class CaseIncident(Base):
    """An engine incident folded into a case. The primary key on incident_id is what makes posting idempotent."""

    __tablename__ = "case_incidents"

    incident_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    case_id: Mapped[int] = mapped_column(Id, ForeignKey("cases.id"), index=True)
    source: Mapped[str] = mapped_column(String(16))
    camera_id: Mapped[str | None] = mapped_column(String())
    zone_id: Mapped[str | None] = mapped_column(String())
    box: Mapped[list[float] | None]
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]
    ended: Mapped[bool]
    severity: Mapped[int] = mapped_column(Integer)
    count: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    posted_at: Mapped[datetime]

    case: Mapped[Case] = relationship(back_populates="incidents")


class CaseEvent(Base):
    """One line of a case's history: a transition, or a change that kept the status (merge, escalation, purge)."""

    __tablename__ = "case_events"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    case_id: Mapped[int] = mapped_column(Id, ForeignKey("cases.id"), index=True)
    kind: Mapped[str] = mapped_column(String(24), comment="created | transition | relapse | merged | escalated | evidence_purged")
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String())
    at: Mapped[datetime] = mapped_column(index=True)
    note: Mapped[str | None] = mapped_column(Text)
    incident_id: Mapped[str | None] = mapped_column(String(200))
    deadline_at: Mapped[datetime | None] = mapped_column(comment="the deadline set by a dispatch, kept for historical reports")

    case: Mapped[Case] = relationship(back_populates="events")


class CaseEvidence(Base):
    """A reference from a case to a file in the evidence store. While `purged_at` is null the file is kept."""

    __tablename__ = "case_evidence"
    __table_args__ = (UniqueConstraint("case_id", "sha256", "kind"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    case_id: Mapped[int] = mapped_column(Id, ForeignKey("cases.id"), index=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    taken_at: Mapped[datetime]
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    incident_id: Mapped[str | None] = mapped_column(String(200))
    added_at: Mapped[datetime]
    purged_at: Mapped[datetime | None]

    case: Mapped[Case] = relationship(back_populates="evidence")


class OutboxMessage(Base):
    """A message to deliver, written in the same transaction as the case change it announces."""

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("channel", "idempotency_key"),
        Index(None, "channel", "status", "id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), comment="webhook | mqtt")
    topic: Mapped[str | None] = mapped_column(String(300), comment="MQTT topic; null for the webhook")
    idempotency_key: Mapped[str] = mapped_column(String(100))
    case_id: Mapped[int] = mapped_column(Id, ForeignKey("cases.id"), index=True)
    event_id: Mapped[int] = mapped_column(Id, ForeignKey("case_events.id"))
    payload: Mapped[str] = mapped_column(Text, comment="the exact JSON body sent (and signed)")
    status: Mapped[str] = mapped_column(String(12), comment="pending | delivered | dead")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    next_attempt_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)


# ---- annotations (issue 9: the annotators' retraining loop) -------------------------------------------------


class Annotation(Base):
    """One save of a person's work on one case's frame: a review decision, a set of boxes, or an imported batch.

    Rows are only ever added (a new save is a new row, the latest with boxes is the frame's label set), so no
    later status change of the case, and no later edit, loses what a reviewer did and when.
    """

    __tablename__ = "annotations"
    __table_args__ = (Index(None, "case_id", "frame_sha256", "id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    case_id: Mapped[int] = mapped_column(Id, ForeignKey("cases.id"))
    frame_sha256: Mapped[str | None] = mapped_column(String(64), index=True, comment="the evidence store's best frame the boxes are on")
    action: Mapped[str] = mapped_column(String(16), comment="boxes | dispatch | reject | import")
    reviewer: Mapped[str] = mapped_column(String())
    at: Mapped[datetime] = mapped_column(index=True)
    source: Mapped[str] = mapped_column(String(32), comment="review-page | cli | api | import:<format>")
    model: Mapped[str | None] = mapped_column(String(), comment="the model that proposed the frame's boxes")
    event_id: Mapped[int | None] = mapped_column(Id, ForeignKey("case_events.id"), comment="the case transition a decision made")
    frame_size: Mapped[list[float] | None] = mapped_column(comment="[width, height] of the frame, pixels")
    boxes: Mapped[list[float] | None] = mapped_column(comment="the frame's full label set: [{class_name, box xyxy px, origin, proposal, score}]")
    negatives: Mapped[list[float] | None] = mapped_column(comment="model boxes the reviewer deleted: hard negatives [{class_name, box, proposal}]")
    note: Mapped[str | None] = mapped_column(Text)


# ---- API keys and review sessions (service auth, issue 8) ---------------------------------------------


class ApiKey(Base):
    """A service API key with one role. Only the SHA-256 of the key is kept: the key is 256 random bits, so a
    plain fast hash is enough (no salt or slow hash needed), and the database alone never lets anyone in."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(), comment="who holds it; recorded as the actor of their actions")
    role: Mapped[str] = mapped_column(String(16), comment="camera | reviewer | admin")
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, comment="sha256 hex of the key")
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class ReviewSession(Base):
    """A review-page login: the browser holds a random token, this table its SHA-256, the key it came from and
    when it ends. Logout deletes the row; revoking the key ends its sessions."""

    __tablename__ = "review_sessions"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_id: Mapped[int] = mapped_column(Id, ForeignKey("api_keys.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)


# ---- durable intake (issue 8): per-camera frame order and quarantined reports --------------------------------


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


# ---- the night job's progress (issue 7: resume after a crash) ------------------------------------------------


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

"""The ledger's tables as SQLAlchemy 2 typed ORM classes. Alembic migrations in `pipeline/db/migrations/` create them.

Keep these and the migrations in step: `tests/cases/test_db.py` fails if they drift apart.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ...domain import GeoPoint, Location
from .base import Base, Id


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
        """The case's place as the domain's `Location`, rebuilt from its columns (gps only when both lat and lon are set).
        Not validated again: the columns were checked when written, and a row from before a rule was added (a bidi
        control in a point name, refused at intake since) must still be listed, and shown made visible."""
        gps = GeoPoint.model_construct(lat=self.lat, lon=self.lon) if self.lat is not None and self.lon is not None else None
        return Location.model_construct(district=self.district, street=self.street, point=self.point, gps=gps)

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

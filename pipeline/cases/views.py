"""What the ledger hands out: plain pydantic snapshots of cases, detached from any database session."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, computed_field

from ..db.tables.ledger import Case
from ..domain import Location, ViolationType
from .lifecycle import CaseStatus


UtcTime = Annotated[datetime, AfterValidator(lambda d: d.astimezone(UTC))]
"""Times handed out are always UTC, whatever zone they were given in."""


class _View(BaseModel):
    model_config = ConfigDict(frozen=True)


class CaseEventView(_View):
    id: int
    kind: str
    from_status: CaseStatus | None
    to_status: CaseStatus
    actor: str
    at: UtcTime
    note: str | None
    incident_id: str | None
    deadline_at: UtcTime | None


class EvidenceRef(_View):
    sha256: str
    kind: str
    taken_at: UtcTime
    size_bytes: int
    incident_id: str | None
    purged: bool


class CaseView(_View):
    id: int
    type: ViolationType
    status: CaseStatus
    source: str
    severity: int
    count: int
    score: float
    camera_id: str | None
    zone_id: str | None
    box: tuple[float, float, float, float] | None
    location: Location
    owner: str | None
    first_seen: UtcTime
    last_seen: UtcTime
    created_at: UtcTime
    updated_at: UtcTime
    dispatched_at: UtcTime | None
    deadline_at: UtcTime | None
    rectified_at: UtcTime | None
    verified_at: UtcTime | None
    closed_at: UtcTime | None
    rejected_at: UtcTime | None
    reopened_at: UtcTime | None
    escalated_at: UtcTime | None
    relapse_count: int
    escalation_count: int
    revision: int
    incident_ids: tuple[str, ...]
    evidence: tuple[EvidenceRef, ...]
    history: tuple[CaseEventView, ...]

    @computed_field
    @property
    def reject_reason(self) -> str | None:
        """The reviewer's reason for the latest rejection, for the retraining sample exporter."""
        for e in reversed(self.history):
            if e.kind == "transition" and e.to_status is CaseStatus.REJECTED:
                return e.note
        return None

    @classmethod
    def of(cls, case: Case) -> CaseView:
        return cls(
            id=case.id,
            type=case.type,
            status=CaseStatus(case.status),
            source=case.source,
            severity=case.severity,
            count=case.count,
            score=case.score,
            camera_id=case.camera_id,
            zone_id=case.zone_id,
            box=tuple(case.box) if case.box else None,
            location=case.location,
            owner=case.owner,
            first_seen=case.first_seen,
            last_seen=case.last_seen,
            created_at=case.created_at,
            updated_at=case.updated_at,
            dispatched_at=case.dispatched_at,
            deadline_at=case.deadline_at,
            rectified_at=case.rectified_at,
            verified_at=case.verified_at,
            closed_at=case.closed_at,
            rejected_at=case.rejected_at,
            reopened_at=case.reopened_at,
            escalated_at=case.escalated_at,
            relapse_count=case.relapse_count,
            escalation_count=case.escalation_count,
            revision=case.revision,
            incident_ids=tuple(i.incident_id for i in case.incidents),
            evidence=tuple(
                EvidenceRef(sha256=e.sha256, kind=e.kind, taken_at=e.taken_at, size_bytes=e.size_bytes, incident_id=e.incident_id, purged=e.purged_at is not None)
                for e in case.evidence
            ),
            history=tuple(
                CaseEventView(
                    id=e.id, kind=e.kind, from_status=e.from_status, to_status=e.to_status, actor=e.actor, at=e.at, note=e.note, incident_id=e.incident_id, deadline_at=e.deadline_at
                )
                for e in case.events
            ),
        )


class PostResult(_View):
    """What posting an incident did to the ledger."""

    case_id: int
    created: bool  # a new case was opened
    reopened: bool  # a verified/closed case at the spot relapsed (反弹)
    merged: bool  # a new incident id joined an open case at the same spot
    changed: bool  # anything was written at all (False for an exact re-post)
    status: CaseStatus

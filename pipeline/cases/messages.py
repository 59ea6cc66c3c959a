"""The JSON a receiver gets for each case event, identical on every channel.

The idempotency key names the event (`case-<id>-event-<event id>`), so a receiver that stores keys it has
seen processes each event once however often a retry delivers it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from ..db.tables.ledger import Case, CaseEvent
from ..domain import Location, ViolationType
from .views import UtcTime

SCHEMA_VERSION = 1


class _Msg(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EvidenceLink(_Msg):
    kind: str
    sha256: str
    url: str
    taken_at: UtcTime


class EventInfo(_Msg):
    id: int
    kind: str
    from_status: str | None
    to_status: str
    actor: str
    at: UtcTime
    note: str | None
    deadline_at: UtcTime | None


class CaseSnapshot(_Msg):
    id: int
    revision: int
    type: ViolationType
    status: str
    severity: int
    count: int
    source: str
    camera_id: str | None
    location: Location
    owner: str | None
    first_seen: UtcTime
    last_seen: UtcTime
    deadline_at: UtcTime | None
    escalated_at: UtcTime | None
    relapse_count: int
    incident_ids: list[str]
    evidence: list[EvidenceLink]


class CaseMessage(_Msg):
    schema_version: int = SCHEMA_VERSION
    idempotency_key: str
    event: EventInfo
    case: CaseSnapshot


def idempotency_key(case_id: int, event_id: int) -> str:
    return f"case-{case_id}-event-{event_id}"


def evidence_url(base_url: str, sha256: str) -> str:
    return f"{base_url.rstrip('/')}/{sha256}"


def build_message(case: Case, event: CaseEvent, evidence_base_url: str) -> CaseMessage:
    """A snapshot of `case` right after `event`; call it inside the transaction that wrote the event."""
    return CaseMessage(
        idempotency_key=idempotency_key(case.id, event.id),
        event=EventInfo(
            id=event.id, kind=event.kind, from_status=event.from_status, to_status=event.to_status, actor=event.actor, at=event.at, note=event.note, deadline_at=event.deadline_at
        ),
        case=CaseSnapshot(
            id=case.id,
            revision=case.revision,
            type=case.type,
            status=case.status,
            severity=case.severity,
            count=case.count,
            source=case.source,
            camera_id=case.camera_id,
            location=case.location,
            owner=case.owner,
            first_seen=case.first_seen,
            last_seen=case.last_seen,
            deadline_at=case.deadline_at,
            escalated_at=case.escalated_at,
            relapse_count=case.relapse_count,
            incident_ids=[i.incident_id for i in case.incidents],
            evidence=[
                EvidenceLink(kind=e.kind, sha256=e.sha256, url=evidence_url(evidence_base_url, e.sha256), taken_at=e.taken_at) for e in case.evidence if e.purged_at is None
            ],
        ),
    )

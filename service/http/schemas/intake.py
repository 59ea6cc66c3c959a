"""POST /frames and POST /photos: what the engine made of an upload and what the ledger did with it, with
evidence as URLs instead of the engine's local paths."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from pipeline.cases.lifecycle import CaseStatus
from pipeline.cases.messages import evidence_url
from pipeline.domain import IncidentReport, Location, ViolationType
from pipeline.rules import Violation

from .common import Box, Out
from .detect import DetectionOut


class ViolationOut(Out):
    type: ViolationType
    zone_id: str
    box: Box
    count: int
    score: float
    severity: int
    since: datetime = Field(description="When the evidence settled")

    @classmethod
    def of(cls, v: Violation) -> ViolationOut:
        return cls(type=v.type, zone_id=v.zone_id, box=tuple(round(float(x), 1) for x in v.box), count=v.count, score=round(v.score, 4), severity=v.severity, since=v.since)


class EvidenceLink(Out):
    kind: str
    sha256: str
    taken_at: datetime
    url: str


class CaseLink(Out):
    """What posting an incident did in the ledger."""

    case_id: int
    status: CaseStatus
    created: bool = Field(description="A new case was opened")
    merged: bool = Field(description="A new incident joined an open case at the same spot")
    reopened: bool = Field(description="A verified/closed case at the spot relapsed (反弹)")
    changed: bool = Field(description="False for an exact re-post")
    url: str


class IncidentOut(Out):
    change: Literal["opened", "updated", "ended"]
    incident_id: str
    type: ViolationType
    source: Literal["camera", "patrol"]
    camera_id: str | None
    zone_id: str | None
    location: Location
    owner: str | None
    first_seen: datetime
    last_seen: datetime
    ended: bool
    severity: int
    count: int
    score: float
    box: Box | None
    evidence: list[EvidenceLink]
    case: CaseLink


class RetriedOut(Out):
    """A report from an earlier request that the ledger could not take then, posted now."""

    incident_id: str
    case: CaseLink


class VerifyOut(Out):
    case_id: int
    action: Literal["verified", "escalated"]
    at: datetime
    after_image_sha256: str | None


class IntakeOut(Out):
    model: str
    width: int
    height: int
    taken_at: datetime
    detections: list[DetectionOut] = Field(description="What the engine kept: ignore zones and fixtures removed; tracked for cameras")
    violations: list[ViolationOut]
    incidents: list[IncidentOut] = Field(description="Incident reports of this frame, each with the case it went to (committed)")
    verified: list[VerifyOut] = Field(description="Dispatched cases this frame auto-verified or escalated")
    retried: list[RetriedOut]


class FrameOut(IntakeOut):
    camera_id: str


class PhotoOut(IntakeOut):
    location: Location
    time_source: Literal["form", "exif", "received"] = Field(description="Where taken_at came from")
    gps_source: Literal["form", "exif"]


def evidence_links(report: IncidentReport, base_url: str) -> list[EvidenceLink]:
    return [EvidenceLink(kind=e.kind, sha256=e.sha256, taken_at=e.taken_at, url=evidence_url(f"{base_url}/evidence/", e.sha256)) for e in report.evidence]


def case_link(post, base_url: str) -> CaseLink:
    return CaseLink(case_id=post.case_id, status=post.status, created=post.created, merged=post.merged, reopened=post.reopened, changed=post.changed, url=f"{base_url}/cases/{post.case_id}")


def intake_fields(processed, base_url: str) -> dict:
    """The fields IntakeOut shares between frames and photos."""
    r = processed.result
    changes = ["opened"] * len(r.frame.opened) + ["updated"] * len(r.frame.updated) + ["ended"] * len(r.frame.ended)
    incidents = [
        IncidentOut(change=change, **report.model_dump(exclude={"evidence"}), evidence=evidence_links(report, base_url), case=case_link(post, base_url))
        for change, report, post in zip(changes, r.frame.reports, r.posted)
    ]
    return {
        "model": processed.model.name,
        "width": processed.width,
        "height": processed.height,
        "detections": DetectionOut.many(r.frame.detections),
        "violations": [ViolationOut.of(v) for v in r.frame.violations],
        "incidents": incidents,
        "verified": [VerifyOut(case_id=a.case_id, action=a.action, at=a.at, after_image_sha256=a.after_image_sha256) for a in r.verified],
        "retried": [RetriedOut(incident_id=rep.incident_id, case=case_link(post, base_url)) for rep, post in r.retried],
    }

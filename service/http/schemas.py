"""Request and response models of the API, so the OpenAPI schema says exactly what goes in and out.

Cases are the ledger's own `CaseView`; engine results are translated here, with evidence as URLs instead of
the engine's local paths.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import supervision as sv
from pydantic import BaseModel, ConfigDict, Field

from pipeline.cases import CaseView
from pipeline.cases.lifecycle import CaseStatus
from pipeline.cases.messages import evidence_url
from pipeline.config import Fixture, ZoneKind
from pipeline.domain import IncidentReport, Location, ViolationType
from pipeline.rules import Violation

Box = tuple[float, float, float, float]


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class Page(_Out):
    """The paging fields of every list answer (`paging.page_fields` fills them)."""

    total: int = Field(description="Items matching the filters, over all pages")
    offset: int = Field(description="Items skipped before this page")
    limit: int = Field(description="Most items per page")
    next: str | None = Field(description="URL of the next page; null on the last")


# ---- health -----------------------------------------------------------------------------------------


class Health(_Out):
    status: Literal["ok"] = "ok"


class ReadyBrief(_Out):
    """What /ready tells a caller without an admin key: ready or not, and any warning about how it runs."""

    ready: bool = Field(description="True when a model is loaded, the ledger database answers and the backlog is not growing")
    warnings: list[str] = Field(default_factory=list, description="E.g. that the service runs with --insecure-open")


class Readiness(ReadyBrief):
    """What /ready tells an admin."""

    model: str | None = Field(description="The model serving, if any")
    model_error: str | None = Field(description="Why no model is loaded")
    database: bool
    database_error: str | None
    config_version: int = Field(description="Bumps on every successful reload of the camera config")
    config_error: str | None = Field(description="Why the last reload failed; the last good config stays in use")
    backlog: int = Field(description="Incident reports waiting in the journaled queue because the ledger was unavailable")
    backlog_error: str | None = Field(None, description="Why the backlog is not draining (so it grows); not ready while set")
    quarantined: int | None = Field(None, description="Reports the ledger refused, kept for an admin (GET /quarantine); null when the database is down")


# ---- detections -------------------------------------------------------------------------------------


class DetectionOut(_Out):
    class_id: int
    class_name: str
    score: float
    box: Box = Field(description="x1, y1, x2, y2 in the uploaded image's pixels")
    track_id: int | None = Field(None, description="Tracker id (camera frames only)")

    @classmethod
    def many(cls, d: sv.Detections) -> list[DetectionOut]:
        names = d.data.get("class_name", [""] * len(d))
        tracks = d.tracker_id if d.tracker_id is not None else [None] * len(d)
        return [
            cls(class_id=int(c), class_name=str(n), score=round(float(s), 4), box=tuple(round(float(v), 1) for v in xy), track_id=None if t is None or int(t) < 0 else int(t))
            for xy, s, c, n, t in zip(d.xyxy, d.confidence, d.class_id, names, tracks)
        ]


class DetectOut(_Out):
    model: str
    width: int
    height: int
    detections: list[DetectionOut]


# ---- frames and photos ------------------------------------------------------------------------------


class ViolationOut(_Out):
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


class EvidenceLink(_Out):
    kind: str
    sha256: str
    taken_at: datetime
    url: str


class CaseLink(_Out):
    """What posting an incident did in the ledger."""

    case_id: int
    status: CaseStatus
    created: bool = Field(description="A new case was opened")
    merged: bool = Field(description="A new incident joined an open case at the same spot")
    reopened: bool = Field(description="A verified/closed case at the spot relapsed (反弹)")
    changed: bool = Field(description="False for an exact re-post")
    url: str


class IncidentOut(_Out):
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


class RetriedOut(_Out):
    """A report from an earlier request that the ledger could not take then, posted now."""

    incident_id: str
    case: CaseLink


class VerifyOut(_Out):
    case_id: int
    action: Literal["verified", "escalated"]
    at: datetime
    after_image_sha256: str | None


class IntakeOut(_Out):
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


# ---- cases ------------------------------------------------------------------------------------------


class CaseList(Page):
    count: int = Field(description="Cases on this page")
    cases: list[CaseView]


class TransitionIn(BaseModel):
    """The actor kept in the history is the API key's name, never a field of the request (`actor` is still
    accepted, and ignored, so that older clients keep working)."""

    # documented, so a client (or a fuzzer) can know: `fixture` goes only with `to: rejected`
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"if": {"properties": {"fixture": {"const": True}}, "required": ["fixture"]}, "then": {"properties": {"to": {"const": "rejected"}}}},
    )

    to: CaseStatus = Field(description="Target status")
    actor: str | None = Field(
        None, max_length=200, deprecated=True,
        description="Deprecated and ignored: the actor recorded in the history is always the calling key's name. Accepted only so that older clients keep working.",
    )
    note: str | None = Field(None, max_length=2000, description="Required to reject (the reason) and to rectify without a photo")
    owner: str | None = Field(None, max_length=200, description="Point owner (点位长) to dispatch to; defaults to the case's")
    fixture: bool = Field(False, description="With to=rejected: also add fixtures for the case's spot so the camera stops raising it")


# ---- models -----------------------------------------------------------------------------------------


class ModelSummary(_Out):
    name: str
    servable: bool = Field(description="Has model.onnx (the service serves ONNX only)")
    current: bool = Field(description="Serving now")
    created: str | None = None
    architecture: str | None = None
    imgsz: int | None = None
    classes: list[str] = Field(default_factory=list)
    map50: float | None = Field(None, description="garbage-cn val mAP50 from the card")
    map50_95: float | None = None
    latency_ms: float | None = Field(None, description="Median ONNX CPU latency from the card")


class ModelList(Page):
    models_dir: str
    current_file: str | None = Field(description="What models/CURRENT names (used at startup)")
    models: list[ModelSummary]


class CurrentModel(_Out):
    name: str
    path: str
    classes: list[str]
    imgsz: int
    loaded_at: datetime
    rule_classes_missing: list[str] = Field(description="Classes the configured rules look for that this model cannot detect")


class ModelChoice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, description="A model folder name in the models directory")


# ---- cameras ----------------------------------------------------------------------------------------


class ZoneOut(_Out):
    id: str
    kind: ZoneKind
    point: str | None
    scheduled: bool = Field(description="Has allowed time windows")


class CameraOut(_Out):
    id: str
    name: str
    location: Location
    owner: str | None
    resolution: tuple[int, int]
    timezone: str
    zones: list[ZoneOut]
    fixtures: list[Fixture]
    last_frame_at: datetime | None


class CameraList(Page):
    config_path: str | None
    config_version: int
    config_error: str | None = Field(description="Why the last reload failed; the last good config stays in use")
    fixtures_file: str | None
    cameras: list[CameraOut]


class FixtureEdit(BaseModel):
    """A known static thing allowed where it stands; detections matching it are dropped from the next frame on."""

    model_config = ConfigDict(extra="forbid")

    box: Box = Field(description="x1, y1, x2, y2 in the camera's resolution pixels (or 0..1 with coords=normalized)")
    coords: Literal["pixel", "normalized"] = "pixel"
    classes: list[str] | None = Field(None, description="Classes it suppresses; all if omitted")
    reason: str = Field(min_length=1, max_length=500, description="Why it is allowed, e.g. 'permitted kiosk'")
    min_iou: float = Field(0.4, gt=0, le=1)

    def fixture(self, fixture_id: str) -> Fixture:
        return Fixture(id=fixture_id, box=self.box, coords=self.coords, classes=tuple(self.classes) if self.classes else None, min_iou=self.min_iou, reason=self.reason)


class FixtureIn(FixtureEdit):
    id: str | None = Field(None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.\-]+$", description="Stable once given; defaults to a generated one")


class FixtureOut(Fixture):
    editable: bool = Field(description="In the fixtures file, so the API can edit and remove it; false: hand-written in the camera config")


class FixtureList(Page):
    camera_id: str
    fixtures: list[FixtureOut]

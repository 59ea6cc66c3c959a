"""Review decisions on cases: dispatch, and reject as a false alarm, optionally marking the spot as a fixture so
the camera stops raising it. The CLI, the API and the review page all call these, so a decision means the same
wherever it is taken.

Fixtures from a rejected camera case are what would have kept it from being raised. A case's box is the union of everything behind it (five bikes are one box), which no single detection would
match by IoU, so the fixtures come from the detections behind the case, as its latest metadata evidence lists
them, one fixture per detection and class. Boxes are stored normalized by the evidence frame's size, so they
hold whatever resolution the camera streams at. A case without metadata falls back to its own box, in the
camera's resolution pixels, for the classes its type's rule uses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from PIL import Image

from ..cases import CaseStore, CaseView, EvidenceStore
from ..cases.errors import LedgerError
from ..cases.lifecycle import CaseStatus
from ..config import CameraConfig, ConfigError, Fixture, RulesConfig
from ..config.load import UnknownCamera, add_fixtures

if TYPE_CHECKING:
    from ..config.source import ConfigSource


class NotACameraCase(LedgerError):
    """Only a fixed camera's case has a spot in a frame that a fixture can mark."""


def _clamp(v: float) -> float:
    return min(max(v, 0.0), 1.0)


def fixtures_for_case(case: CaseView, evidence: EvidenceStore, camera: CameraConfig, rules: RulesConfig, reason: str) -> list[Fixture]:
    note = f"rejected case {case.id}: {reason}"[:500]
    metas = [e for e in case.evidence if e.kind == "metadata" and not e.purged and evidence.exists(e.sha256)]
    if metas:
        meta = json.loads(evidence.read(max(metas, key=lambda e: e.taken_at).sha256))
        frame_sha = meta.get("files", {}).get("best_frame", {}).get("sha256")
        if frame_sha and evidence.exists(frame_sha):
            with Image.open(evidence.path(frame_sha)) as im:  # the header is enough for the size
                w, h = im.size
            out = []
            for i, d in enumerate(meta.get("detections") or []):
                x1, y1, x2, y2 = d["box"]
                box = (_clamp(x1 / w), _clamp(y1 / h), _clamp(x2 / w), _clamp(y2 / h))
                if box[2] > box[0] and box[3] > box[1]:
                    out.append(Fixture(id=f"case{case.id}-{i + 1}", box=box, coords="normalized", classes=(d["class_name"],), reason=note))
            if out:
                return out
    if case.box is None:
        return []
    x1, y1, x2, y2 = case.box
    rw, rh = camera.resolution
    box = (max(x1, 0.0), max(y1, 0.0), min(x2, float(rw)), min(y2, float(rh)))
    return [Fixture(id=f"case{case.id}-1", box=box, classes=rules.classes_for(case.type), reason=note)]


@dataclass(frozen=True)
class Rejection:
    case: CaseView
    fixtures: list[Fixture] = field(default_factory=list)

    def message(self) -> str:
        return f"case {self.case.id} rejected" + (f"; {len(self.fixtures)} fixture(s) added to camera {self.case.camera_id}" if self.fixtures else "")


def dispatch(store: CaseStore, case_id: int, *, actor: str, owner: str | None = None, source: str = "api") -> CaseView:
    """Send a case to its point owner (点位长), or to `owner`."""
    return store.transition(case_id, CaseStatus.DISPATCHED, actor=actor, owner=owner or None, source=source)


def reject(store: CaseStore, case_id: int, *, actor: str, reason: str, fixture_source: ConfigSource | None = None, source: str = "api") -> Rejection:
    """Reject a case as a false alarm; with `fixture_source` (the camera config), also add the fixtures that
    would have kept it from being raised.

    Everything is checked before the case changes, so a refusal leaves both the case and the config untouched.
    """
    fixtures: list[Fixture] = []
    if fixture_source is not None:
        case = store.get(case_id)
        if case.camera_id is None or case.box is None:
            raise NotACameraCase(f"case {case_id} is not from a fixed camera; only camera cases can mark a fixture")
        config = fixture_source.get()
        try:
            camera = config.camera(case.camera_id)
        except KeyError as e:
            raise UnknownCamera(e.args[0]) from None
        fixtures = fixtures_for_case(case, store.evidence, camera, config.rules, reason.strip() or "rejected")
        add_fixtures(config, camera.id, fixtures, check_only=True)
    case = store.transition(case_id, CaseStatus.REJECTED, actor=actor, note=reason, source=source)  # logs the decision too
    if fixtures:
        try:
            add_fixtures(fixture_source.get(), case.camera_id, fixtures)
        except ConfigError as e:
            raise type(e)(f"case {case.id} was rejected, but its fixtures were not added: {e}") from None
        fixture_source.get()  # pick the new fixtures up now
    return Rejection(case, fixtures)

"""Fixtures from a rejected camera case ("this spot is a fixture"): what would have kept it from being raised.

A case's box is the union of everything behind it (five bikes are one box), which no single detection would
match by IoU, so the fixtures come from the detections behind the case, as its latest metadata evidence lists
them, one fixture per detection and class. Boxes are stored normalized by the evidence frame's size, so they
hold whatever resolution the camera streams at. A case without metadata falls back to its own box, in the
camera's resolution pixels, for the classes its type's rule uses.
"""

from __future__ import annotations

import json

from PIL import Image

from pipeline.cases import CaseView, EvidenceStore
from pipeline.config import CameraConfig, Fixture, RulesConfig


def type_classes(rules: RulesConfig, type_: str) -> tuple[str, ...]:
    if type_ == "street_vending":
        return rules.street_vending.standalone_classes + rules.street_vending.attended_classes
    if type_ == "non_motor_parking":
        return rules.non_motor_parking.vehicle_classes
    return rules.garbage.classes


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
    return [Fixture(id=f"case{case.id}-1", box=box, classes=type_classes(rules, case.type), reason=note)]

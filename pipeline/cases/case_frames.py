"""A case's frame as something to label: the best frame in the evidence store, the model's boxes on it (its
proposals) and which of them the violation was built on. The ledger records the frame a review decision was taken
on (`store`), and the samples stage (`pipeline.samples.labels`) reads labels on it, so the frame is found here,
beside the evidence it comes from.

A case has one frame per `metadata` evidence (each names its best frame); new incidents and reports bring new
ones. `case_frame` is the latest, `case_frames` all of them: boxes are saved on the frame they were drawn on, and
stay there when a newer frame comes. The model's boxes come from that frame's metadata: `frame_detections` lists
every object the model found in the frame (older metadata only has the violation's `detections`, which then
stand for all).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from PIL import Image

from ..geometry import box_iou
from .annotations import LabelBox
from .evidence_store import EvidenceStore
from .views import CaseView

STATIC_PROPOSAL = "stall"  # the class a static object is proposed as in the box editor (datasets/classes.yaml)


class HasEvidence(Protocol):
    """What a frame is read from: a `CaseStore`'s evidence store (named by shape, so the store itself can ask)."""

    @property
    def evidence(self) -> EvidenceStore: ...


@dataclass(frozen=True)
class CaseFrame:
    """The frame a case is labelled on, with the model's boxes (`proposals`) and which of them the violation was built on."""

    case_id: int
    frame_sha256: str
    width: int
    height: int
    camera_id: str | None
    taken_at: datetime
    model: str | None
    proposals: tuple[LabelBox, ...]
    violation: tuple[int, ...]


def case_frames(store: HasEvidence, case: CaseView) -> list[CaseFrame]:
    """Every frame of the case still in the evidence store, oldest first (one per metadata evidence)."""
    metas = [e for e in case.evidence if e.kind == "metadata" and not e.purged and store.evidence.exists(e.sha256)]
    frames: dict[str, CaseFrame] = {}
    for ref in sorted(metas, key=lambda e: (e.taken_at, e.sha256)):
        frame = _frame_of(store, case, ref)
        if frame is not None:
            frames.pop(frame.frame_sha256, None)
            frames[frame.frame_sha256] = frame  # a frame named again by newer metadata counts as of then
    return list(frames.values())


def case_frame(store: HasEvidence, case: CaseView, frame_sha256: str | None = None) -> CaseFrame | None:
    """The case's frame `frame_sha256`, or its latest one; None when the evidence store has none (purged, a case
    posted without evidence, or a frame that is not this case's)."""
    frames = case_frames(store, case)
    if frame_sha256 is None:
        return frames[-1] if frames else None
    return next((f for f in frames if f.frame_sha256 == frame_sha256), None)


def _frame_of(store: HasEvidence, case: CaseView, ref) -> CaseFrame | None:
    meta = json.loads(store.evidence.read(ref.sha256))
    sha = (meta.get("files", {}).get("best_frame") or {}).get("sha256")
    if not sha or not store.evidence.exists(sha):
        return None
    if meta.get("frame_size"):
        width, height = (int(v) for v in meta["frame_size"])
    else:
        with Image.open(store.evidence.path(sha)) as im:  # the header is enough
            width, height = im.size
    members = meta.get("detections") or []
    found = meta.get("frame_detections")
    raw = found if found is not None else members
    proposals = []
    for i, d in enumerate(raw):
        x1, y1, x2, y2 = (min(max(float(v), 0.0), float(lim)) for v, lim in zip(d["box"], (width, height, width, height)))
        if x2 > x1 and y2 > y1:
            proposals.append(LabelBox(class_name=d["class_name"], box=(x1, y1, x2, y2), origin="model", proposal=i, score=d.get("score")))
    # A static object (new in the view, stayed put) has no class a model gave it: the editor proposes it as a
    # stall, which the reviewer keeps, resizes, relabels (cart, tricycle, goods) or deletes; it is part of the
    # violation, so a dispatch confirms it as a stall and a rejection makes it a hard negative.
    static_at = len(proposals)
    for d in meta.get("static_objects") or ():
        x1, y1, x2, y2 = (min(max(float(v), 0.0), float(lim)) for v, lim in zip(d["box"], (width, height, width, height)))
        if x2 > x1 and y2 > y1:
            proposals.append(LabelBox(class_name=STATIC_PROPOSAL, box=(x1, y1, x2, y2), origin="model", proposal=len(proposals), score=None))
    violation: list[int] = list(range(static_at, len(proposals)))
    if found is None:
        violation = list(range(len(proposals)))
    elif proposals and members:
        iou = box_iou([p.box for p in proposals], [m["box"] for m in members])
        for j, m in enumerate(members):
            same = [i for i, p in enumerate(proposals[:static_at]) if p.class_name == m["class_name"]]
            if same:
                best = max(same, key=lambda i: iou[i, j])
                if iou[best, j] >= 0.9:
                    violation.append(best)
    return CaseFrame(case.id, sha, width, height, case.camera_id, ref.taken_at, meta.get("model"), tuple(proposals), tuple(sorted(set(violation))))

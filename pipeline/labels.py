"""A case's frame as something to label: the best frame in the evidence store, the model's boxes on it, and its
current label set. The review page's box editor, `samples export` and `samples import` all read frames here,
so a box means the same wherever it is seen.

The model's boxes come from the case's latest `metadata` evidence: `frame_detections` lists every object the
model found in the frame (older metadata only has the violation's `detections`, which then stand for all).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from PIL import Image

from .cases import CaseStore, CaseView
from .cases.annotations import AnnotationView, Annotations, LabelBox
from .cases.lifecycle import CaseStatus
from .cases.views import CaseEventView
from .geometry import box_iou

REVIEW_DECISIONS = (CaseStatus.DISPATCHED, CaseStatus.REJECTED)
AWAITING = (CaseStatus.DETECTED, CaseStatus.REOPENED)


def label_classes() -> tuple[str, ...]:
    """The classes a reviewer may give a box. The one place that says so (made config-driven with new classes)."""
    from .train.classes import MERGED_CLASSES

    return MERGED_CLASSES


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


def case_frame(store: CaseStore, case: CaseView) -> CaseFrame | None:
    """The case's frame from its latest metadata evidence, or None when the evidence store has none (purged, or
    a case posted without evidence)."""
    metas = [e for e in case.evidence if e.kind == "metadata" and not e.purged and store.evidence.exists(e.sha256)]
    if not metas:
        return None
    ref = max(metas, key=lambda e: (e.taken_at, e.sha256))
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
    violation: list[int] = []
    if found is None:
        violation = list(range(len(proposals)))
    elif proposals and members:
        iou = box_iou([p.box for p in proposals], [m["box"] for m in members])
        for j, m in enumerate(members):
            same = [i for i, p in enumerate(proposals) if p.class_name == m["class_name"]]
            if same:
                best = max(same, key=lambda i: iou[i, j])
                if iou[best, j] >= 0.9:
                    violation.append(best)
    return CaseFrame(case.id, sha, width, height, case.camera_id, ref.taken_at, meta.get("model"), tuple(proposals), tuple(sorted(set(violation))))


def next_awaiting(store: CaseStore, after: int) -> int | None:
    """The next case awaiting review after case `after` (by id, wrapping round): one indexed query, not a list."""
    from sqlalchemy import func, select

    from .cases.models import Case

    waiting = Case.status.in_([s.value for s in AWAITING])
    with store.db.transaction() as s:
        found = s.scalar(select(func.min(Case.id)).where(waiting, Case.id > after))
        return found if found is not None else s.scalar(select(func.min(Case.id)).where(waiting, Case.id != after))


def review_decision(case: CaseView) -> CaseEventView | None:
    """The latest review decision on a case (dispatched or rejected out of detected/reopened), wherever the case
    went after it: a later rectification, closure or relapse does not undo what the reviewer said."""
    for e in reversed(case.history):
        if e.kind == "transition" and e.to_status in REVIEW_DECISIONS and e.from_status in AWAITING:
            return e
    return None


@dataclass(frozen=True)
class FrameLabels:
    """What is known about a frame's objects now: a saved label set, or the model's proposals."""

    boxes: tuple[LabelBox, ...]
    negatives: tuple[LabelBox, ...]
    saved: AnnotationView | None  # the row the boxes come from; None: nobody has saved boxes for this frame


def current_labels(annotations: Annotations, frame: CaseFrame) -> FrameLabels:
    saved = annotations.latest_boxes(frame.case_id, frame.frame_sha256)
    if saved is None:
        return FrameLabels(frame.proposals, (), None)
    return FrameLabels(saved.boxes or (), saved.negatives or (), saved)

"""A case's frame as something to label: the best frame in the evidence store, the model's boxes on it, and its
current label set. The review page's box editor, `samples export` and `samples import` all read frames here,
so a box means the same wherever it is seen.

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

from PIL import Image

from .cases import CaseStore, CaseView
from .cases.annotations import AnnotationView, Annotations, LabelBox
from .cases.lifecycle import AWAITING, REVIEW_DECISIONS
from .cases.views import CaseEventView
from .geometry import box_iou

STATIC_PROPOSAL = "stall"  # the class a static object is proposed as in the box editor (datasets/classes.yaml)

__all__ = ["AWAITING", "REVIEW_DECISIONS", "CaseFrame", "FrameLabels", "case_frame", "case_frames", "current_labels", "label_classes", "labelled_frame", "next_awaiting", "review_decision"]


def label_classes() -> tuple[str, ...]:
    """The classes a reviewer may give a box: the merged classes, then those annotators added in
    `datasets/classes.yaml` (`train.classes.labelling_classes`)."""
    from .train.classes import labelling_classes

    return labelling_classes()


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


def case_frames(store: CaseStore, case: CaseView) -> list[CaseFrame]:
    """Every frame of the case still in the evidence store, oldest first (one per metadata evidence)."""
    metas = [e for e in case.evidence if e.kind == "metadata" and not e.purged and store.evidence.exists(e.sha256)]
    frames: dict[str, CaseFrame] = {}
    for ref in sorted(metas, key=lambda e: (e.taken_at, e.sha256)):
        frame = _frame_of(store, case, ref)
        if frame is not None:
            frames.pop(frame.frame_sha256, None)
            frames[frame.frame_sha256] = frame  # a frame named again by newer metadata counts as of then
    return list(frames.values())


def case_frame(store: CaseStore, case: CaseView, frame_sha256: str | None = None) -> CaseFrame | None:
    """The case's frame `frame_sha256`, or its latest one; None when the evidence store has none (purged, a case
    posted without evidence, or a frame that is not this case's)."""
    frames = case_frames(store, case)
    if frame_sha256 is None:
        return frames[-1] if frames else None
    return next((f for f in frames if f.frame_sha256 == frame_sha256), None)


def _frame_of(store: CaseStore, case: CaseView, ref) -> CaseFrame | None:
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


def next_awaiting(store: CaseStore, after: int) -> int | None:
    """The next case awaiting review after case `after` (by id, wrapping round): one indexed query, not a list."""
    from sqlalchemy import func, select

    from .db.tables.ledger import Case

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

    frame: CaseFrame
    boxes: tuple[LabelBox, ...]
    negatives: tuple[LabelBox, ...]
    saved: AnnotationView | None  # the row the boxes come from; None: nobody has saved boxes for this frame


def labelled_frame(frames: list[FrameLabels]) -> int | None:
    """Which of a case's frames (their labels, oldest first) to open the editor on: the one whose boxes were saved
    last (a newer frame must not hide them), else the latest."""
    saved = [(f.saved.id, i) for i, f in enumerate(frames) if f.saved is not None]
    if saved:
        return max(saved)[1]
    return len(frames) - 1 if frames else None


def current_labels(annotations: Annotations, frame: CaseFrame) -> FrameLabels:
    saved = annotations.latest_boxes(frame.case_id, frame.frame_sha256)
    if saved is None:
        return FrameLabels(frame, frame.proposals, (), None)
    return FrameLabels(frame, saved.boxes or (), saved.negatives or (), saved)

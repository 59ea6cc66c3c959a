"""A case's frame as something to label: the best frame in the evidence store, the model's boxes on it, and its
current label set. The review page's box editor, `samples export` and `samples import` all read frames here,
so a box means the same wherever it is seen.

A case has one frame per `metadata` evidence (each names its best frame; `pipeline.cases.case_frames` finds them
and the model's boxes on them, beside the evidence); this module adds what people said about them: the saved
label sets, the review decision, the classes a box may have.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..cases import CaseStore, CaseView
from ..cases.annotations import AnnotationView, Annotations, LabelBox
from ..cases.case_frames import CaseFrame
from ..cases.lifecycle import AWAITING, REVIEW_DECISIONS
from ..cases.views import CaseEventView
from .classes import labelling_classes

__all__ = ["AWAITING", "REVIEW_DECISIONS", "FrameLabels", "current_labels", "label_classes", "labelled_frame", "next_awaiting", "review_decision"]


def label_classes() -> tuple[str, ...]:
    """The classes a reviewer may give a box: the merged classes, then those annotators added in
    `datasets/classes.yaml` (`classes.labelling_classes`)."""
    return labelling_classes()


def next_awaiting(store: CaseStore, after: int) -> int | None:
    """The next case awaiting review after case `after` (by id, wrapping round): one indexed query, not a list."""
    from sqlalchemy import func, select

    from ..db.tables.ledger import Case

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

"""Annotations on a case's frame: review decisions, box edits and imported label sets, one row per save.

Nothing here is updated in place: a new save is a new row, and a frame's label set is its latest row with
boxes. So the history of who labelled what, and when, survives any later change of the case's status.
Boxes are xyxy pixels on the frame (the evidence store's best frame, named by its sha256).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select

from ..db.engine import Database
from ..db.tables.annotations import Annotation
from ..db.tables.ledger import Case, CaseEvent
from .errors import CaseNotFound, LedgerError
from .views import UtcTime

Origin = Literal["model", "edited", "drawn", "imported", "confirmed", "pseudo"]
Action = Literal["boxes", "dispatch", "reject", "import"]
BOX_ACTIONS = ("boxes", "import")  # the actions that save a frame's full label set


class LabelBox(BaseModel):
    """One labelled object: its class and xyxy box in frame pixels, and where it came from."""

    model_config = ConfigDict(frozen=True)

    class_name: str = Field(min_length=1, max_length=100, title="Class", description="one of the model's class names")
    box: tuple[float, float, float, float] = Field(title="Box", description="x1, y1, x2, y2 in frame pixels")
    origin: Origin = Field(
        "model", title="Origin",
        description="model: the model's box as proposed; edited: moved, resized or reclassified; drawn: a new box; imported: from an annotation tool; "
        "confirmed / pseudo: an export's confirmed label or pseudo-label that an import brought back unchanged (no person looked at it again)",
    )
    proposal: int | None = Field(None, ge=0, title="Proposal", description="index of the model's box (frame_detections) this one came from")
    score: float | None = Field(None, title="Score", description="the model's score, for model boxes")

    @model_validator(mode="after")
    def _ordered(self) -> LabelBox:
        x1, y1, x2, y2 = self.box
        if not (x2 > x1 and y2 > y1):
            raise ValueError(f"box {list(self.box)} is not xyxy with x2 > x1 and y2 > y1")
        return self


class AnnotationView(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    case_id: int
    frame_sha256: str | None
    action: Action
    reviewer: str
    at: UtcTime
    source: str
    model: str | None
    event_id: int | None
    frame_size: tuple[int, int] | None
    boxes: tuple[LabelBox, ...] | None
    negatives: tuple[LabelBox, ...] | None
    note: str | None

    @classmethod
    def of(cls, a: Annotation) -> AnnotationView:
        return cls(
            id=a.id, case_id=a.case_id, frame_sha256=a.frame_sha256, action=a.action, reviewer=a.reviewer, at=a.at, source=a.source, model=a.model,
            event_id=a.event_id, frame_size=tuple(int(v) for v in a.frame_size) if a.frame_size else None,
            boxes=None if a.boxes is None else tuple(LabelBox.model_validate(b) for b in a.boxes),
            negatives=None if a.negatives is None else tuple(LabelBox.model_validate(b) for b in a.negatives),
            note=a.note,
        )


class StaleLabels(LedgerError):
    """A frame's label set changed after the copy someone edited was taken."""


def _latest_boxes_q(case_id: int, frame_sha256: str):
    return (
        select(Annotation)
        .where(Annotation.case_id == case_id, Annotation.frame_sha256 == frame_sha256, Annotation.action.in_(BOX_ACTIONS))
        .order_by(Annotation.id.desc())
        .limit(1)
    )


def new_row(
    case_id: int,
    *,
    action: Action,
    reviewer: str,
    source: str,
    frame_sha256: str | None = None,
    boxes: Sequence[LabelBox] | None = None,
    negatives: Sequence[LabelBox] | None = None,
    frame_size: tuple[int, int] | None = None,
    model: str | None = None,
    event_id: int | None = None,
    note: str | None = None,
    at: datetime | None = None,
) -> Annotation:
    """A checked, unsaved annotation row: `Annotations.save_all` adds rows in one transaction, and the case store
    adds a decision's row in the transaction of the decision itself."""
    if not reviewer or not reviewer.strip():
        raise LedgerError("an annotation needs a reviewer (who did it)")
    if (action in BOX_ACTIONS) != (boxes is not None):
        raise LedgerError(f"'{action}' {'needs' if action in BOX_ACTIONS else 'takes no'} boxes")
    if boxes is not None and frame_sha256 is None:
        raise LedgerError("boxes belong to a frame: give its sha256")
    at = (at or datetime.now(UTC)).astimezone(UTC)
    row = Annotation(case_id=case_id, frame_sha256=frame_sha256, action=action, reviewer=reviewer.strip(), at=at, source=source, model=model, event_id=event_id, note=note)
    # JSON columns are only set when given: an explicit None would be stored as JSON null, not SQL NULL
    if frame_size:
        row.frame_size = [int(v) for v in frame_size]
    if boxes is not None:
        row.boxes = [b.model_dump(mode="json") for b in boxes]
        row.negatives = [b.model_dump(mode="json") for b in negatives or ()]
    return row


class Annotations:
    """The annotation log of the ledger database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def save(self, case_id: int, **fields) -> AnnotationView:
        """Add one row (see `new_row` for the fields)."""
        return self.save_all([new_row(case_id, **fields)])[0]

    def save_all(self, rows: Sequence[Annotation], *, expect: dict[tuple[int, str], int | None] | None = None) -> list[AnnotationView]:
        """Add every row in one transaction, or none. `expect`: (case, frame) -> the id of the frame's latest box
        row the rows were made from (None: none); a frame saved since then refuses the whole batch (StaleLabels)."""
        with self.db.transaction() as s:
            for (case_id, frame), want in (expect or {}).items():
                have = s.scalar(_latest_boxes_q(case_id, frame).with_only_columns(Annotation.id))
                if have != want:
                    raise StaleLabels(f"case {case_id} frame {frame[:12]}: its boxes were saved again (annotation {have}) since annotation {want}; nothing was saved")
            for row in rows:
                if s.get(Case, row.case_id) is None:
                    raise CaseNotFound(row.case_id)
                if row.event_id is not None and s.get(CaseEvent, row.event_id) is None:
                    raise LedgerError(f"no case event {row.event_id}")
            s.add_all(rows)
            s.flush()
            return [AnnotationView.of(r) for r in rows]

    def history(self, case_id: int) -> list[AnnotationView]:
        """Every row of a case, oldest first."""
        with self.db.transaction() as s:
            return [AnnotationView.of(a) for a in s.scalars(select(Annotation).where(Annotation.case_id == case_id).order_by(Annotation.id))]

    def latest_boxes(self, case_id: int, frame_sha256: str) -> AnnotationView | None:
        """The frame's current label set: its newest row with boxes, or None where nobody has saved any."""
        with self.db.transaction() as s:
            row = s.scalars(_latest_boxes_q(case_id, frame_sha256)).first()
            return AnnotationView.of(row) if row is not None else None

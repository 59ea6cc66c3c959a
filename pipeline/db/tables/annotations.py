"""The annotation log's table (issue 9: the annotators' retraining loop); `pipeline.cases.annotations` writes it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, Id


class Annotation(Base):
    """One save of a person's work on one case's frame: a review decision, a set of boxes, or an imported batch.

    Rows are only ever added (a new save is a new row, the latest with boxes is the frame's label set), so no
    later status change of the case, and no later edit, loses what a reviewer did and when.
    """

    __tablename__ = "annotations"
    __table_args__ = (Index(None, "case_id", "frame_sha256", "id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    case_id: Mapped[int] = mapped_column(Id, ForeignKey("cases.id"))
    frame_sha256: Mapped[str | None] = mapped_column(String(64), index=True, comment="the evidence store's best frame the boxes are on")
    action: Mapped[str] = mapped_column(String(16), comment="boxes | dispatch | reject | import")
    reviewer: Mapped[str] = mapped_column(String())
    at: Mapped[datetime] = mapped_column(index=True)
    source: Mapped[str] = mapped_column(String(32), comment="review-page | cli | api | import:<format>")
    model: Mapped[str | None] = mapped_column(String(), comment="the model that proposed the frame's boxes")
    event_id: Mapped[int | None] = mapped_column(Id, ForeignKey("case_events.id"), comment="the case transition a decision made")
    frame_size: Mapped[list[float] | None] = mapped_column(comment="[width, height] of the frame, pixels")
    boxes: Mapped[list[float] | None] = mapped_column(comment="the frame's full label set: [{class_name, box xyxy px, origin, proposal, score}]")
    negatives: Mapped[list[float] | None] = mapped_column(comment="model boxes the reviewer deleted: hard negatives [{class_name, box, proposal}]")
    note: Mapped[str | None] = mapped_column(Text)

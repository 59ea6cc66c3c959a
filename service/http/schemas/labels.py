"""/review/{id}/boxes: the box editor's frame, its label sets and what it saves."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from pipeline.cases.annotations import AnnotationView, LabelBox

Sha256 = Annotated[str, Field(pattern="^[0-9a-f]{64}$", title="Frame", description="sha256 of the frame in the evidence store (LabelFrameOut.frame_sha256)")]
MAX_BOXES = 500


class BoxesIn(BaseModel):
    """A frame's whole label set as the editor has it now."""

    frame_sha256: Sha256  # the frame the boxes were drawn on: a newer frame of the case must not receive them
    boxes: list[LabelBox] = Field(max_length=MAX_BOXES, title="Boxes", description="every object on the frame, as it should be learned")
    negatives: list[LabelBox] = Field(default_factory=list, max_length=MAX_BOXES, title="Negatives", description="the model's boxes the reviewer deleted (false detections)")


class FrameRef(BaseModel):
    frame_sha256: str
    taken_at: str
    labelled: bool  # boxes were saved on it


class LabelFrameOut(BaseModel):
    case_id: int
    frame_sha256: str
    frame_url: str
    width: int
    height: int
    camera_id: str | None
    model: str | None
    classes: list[str]
    proposals: list[LabelBox]
    violation: list[int]
    boxes: list[LabelBox]
    negatives: list[LabelBox]
    saved: AnnotationView | None
    frames: list[FrameRef]  # every frame of the case, oldest first
    history: list[AnnotationView]

"""The review page's box editor: label a case's frame (move, resize, reclassify, delete, draw boxes) and decide
the case with the keyboard.

- GET  /review/{id}/label  the editor page (HTML; the review page's login applies);
- GET  /review/{id}/boxes  the frame, the model's boxes on it, its current label set and its annotation history;
- POST /review/{id}/boxes  save the frame's label set: a new annotation row, never an update.
Dispatch and reject go through the review page's own form routes, so a decision means the same from either page.

Who may come in and who is labelling come from the review page's session (`review._reviewer`, or a reviewer key
in the header for scripts): never from a name the page sends.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Security
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field

from pipeline.cases import CaseView
from pipeline.cases.annotations import AnnotationView, Annotations, LabelBox
from pipeline.domain import VIOLATION_TYPES
from pipeline.labels import AWAITING, CaseFrame, case_frame, current_labels, label_classes, next_awaiting

from ..auth import require
from ..csrf import same_origin
from ..deps import State
from ..errors import NotFound, Unprocessable, error_responses
from ..keys import Principal, Role
from .review import _reviewer

router = APIRouter(prefix="/review", tags=["review"], dependencies=[Depends(same_origin)])  # POST boxes: a cookie-authenticated write
templates = Jinja2Templates(directory=Path(__file__).resolve().parents[1] / "templates")

CaseId = Annotated[int, PathParam(ge=1, le=2**63 - 1, description="Case id")]
MAX_BOXES = 500
EDGE_PX = 2.0  # a box may overhang the frame by rounding, not more


Reviewer = Security(require(Role.REVIEWER, session=True))  # the session cookie (the page) or a reviewer key


class BoxesIn(BaseModel):
    """A frame's whole label set as the editor has it now."""

    boxes: list[LabelBox] = Field(max_length=MAX_BOXES, title="Boxes", description="every object on the frame, as it should be learned")
    negatives: list[LabelBox] = Field(default_factory=list, max_length=MAX_BOXES, title="Negatives", description="the model's boxes the reviewer deleted (false detections)")


class FrameOut(BaseModel):
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
    history: list[AnnotationView]


def _frame(state, case_id: int) -> tuple[CaseView, CaseFrame]:
    case = state.store.get(case_id)
    frame = case_frame(state.store, case)
    if frame is None:
        raise NotFound(f"case {case_id} has no frame to label in the evidence store (no best frame or metadata)")
    return case, frame


def _frame_out(request: Request, state, case_id: int) -> FrameOut:
    _, frame = _frame(state, case_id)
    annotations = Annotations(state.store.db)
    now = current_labels(annotations, frame)
    return FrameOut(
        case_id=case_id, frame_sha256=frame.frame_sha256, frame_url=str(request.url_for("evidence", sha256=frame.frame_sha256)), width=frame.width, height=frame.height,
        camera_id=frame.camera_id, model=frame.model, classes=list(label_classes()), proposals=list(frame.proposals), violation=list(frame.violation),
        boxes=list(now.boxes), negatives=list(now.negatives), saved=now.saved, history=annotations.history(case_id),
    )


@router.get("/{case_id}/label", response_class=HTMLResponse, summary="Box editor for a case's frame (HTML)", responses={401: {"description": "Login form", "content": {"text/html": {}}}, 404: {"content": {"text/html": {}}}})
def label_page(request: Request, state: State, case_id: CaseId) -> HTMLResponse:
    who = _reviewer(request)
    if not isinstance(who, Principal):  # the login page
        return who
    case = state.store.get(case_id)
    try:
        frame = _frame_out(request, state, case_id).model_dump(mode="json")
    except NotFound:  # nothing to draw on, but the case can still be decided from here
        frame = {"case_id": case_id, "width": 1, "height": 1, "frame_url": None, "model": None, "classes": list(label_classes()), "proposals": [], "violation": [], "boxes": [], "negatives": []}
    context = {
        "case": case, "label": VIOLATION_TYPES[case.type].label if case.type in VIOLATION_TYPES else case.type, "frame": frame,
        "reviewer": who.name, "next_id": next_awaiting(state.store, case_id), "awaiting": case.status in AWAITING, "can_fixture": case.source == "camera" and case.camera_id is not None and case.box is not None,
    }
    return templates.TemplateResponse(request, "label.html", context)


@router.get("/{case_id}/boxes", response_model=FrameOut, dependencies=[Reviewer], summary="A case's frame: the model's boxes, the current label set, the history", responses=error_responses(401, 403, 404, 422))
def get_boxes(request: Request, state: State, case_id: CaseId) -> FrameOut:
    return _frame_out(request, state, case_id)


@router.post("/{case_id}/boxes", response_model=AnnotationView, status_code=201, summary="Save a case frame's label set (a new annotation)", responses=error_responses(401, 403, 404, 422))
def save_boxes(request: Request, state: State, case_id: CaseId, body: BoxesIn, who: Principal = Reviewer) -> AnnotationView:
    reviewer = who.name
    _, frame = _frame(state, case_id)
    classes = label_classes()
    for what, boxes in (("box", body.boxes), ("negative", body.negatives)):
        for i, b in enumerate(boxes):
            if b.class_name not in classes:
                raise Unprocessable(f"{what} {i}: unknown class {b.class_name!r} (known: {', '.join(classes)})")
            x1, y1, x2, y2 = b.box
            if x1 < -EDGE_PX or y1 < -EDGE_PX or x2 > frame.width + EDGE_PX or y2 > frame.height + EDGE_PX:
                raise Unprocessable(f"{what} {i}: box {list(b.box)} leaves the {frame.width}x{frame.height} frame")
    clip = lambda b: b.model_copy(update={"box": (max(b.box[0], 0.0), max(b.box[1], 0.0), min(b.box[2], float(frame.width)), min(b.box[3], float(frame.height)))})  # noqa: E731
    return Annotations(state.store.db).save(
        case_id, action="boxes", reviewer=reviewer, source="review-page", frame_sha256=frame.frame_sha256, boxes=[clip(b) for b in body.boxes],
        negatives=[clip(b) for b in body.negatives], frame_size=(frame.width, frame.height), model=frame.model,
    )

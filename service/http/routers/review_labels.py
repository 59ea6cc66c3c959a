"""The review page's box editor: label a case's frame (move, resize, reclassify, delete, draw boxes) and decide
the case with the keyboard.

- GET  /review/{id}/label  the editor page (HTML; the review page's login applies);
- GET  /review/{id}/boxes  a frame (`?frame=SHA`, else the one labelled last, else the latest), the model's boxes
  on it, its current label set, the case's other frames and its annotation history;
- POST /review/{id}/boxes  save the label set of the frame it names (`frame_sha256`): a new annotation row, never
  an update. A case gets new frames as incidents join it; boxes stay on the frame they were drawn on.
Dispatch and reject go through the review page's own form routes, so a decision means the same from either page.

Who may come in and who is labelling come from the review page's session (`review._reviewer`, or a reviewer key
in the header for scripts): never from a name the page sends.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Security
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from pipeline.cases import CaseView
from pipeline.cases.annotations import AnnotationView, Annotations
from pipeline.cases.case_frames import case_frame, case_frames
from pipeline.cases.lifecycle import AWAITING
from pipeline.samples.labels import current_labels, label_classes, labelled_frame, next_awaiting

from ...runtime.errors import Conflict, NotFound, Unprocessable
from ..auth import require
from .. import display
from ..csrf import same_origin
from ..deps import State
from ..errors import error_responses
from ..keys import Principal, Role
from ..schemas.labels import BoxesIn, FrameRef, LabelFrameOut
from .review import _JSON_ERROR, _reviewer, case_facts, owners

router = APIRouter(prefix="/review", tags=["review"], dependencies=[Depends(same_origin)])  # POST boxes: a cookie-authenticated write
templates = display.install(Jinja2Templates(directory=Path(__file__).resolve().parents[1] / "templates"))  # invisible characters shown

CaseId = Annotated[int, PathParam(ge=1, le=2**63 - 1, description="Case id")]
FrameQuery = Annotated[str | None, Query(pattern="^[0-9a-f]{64}$", description="the frame to open (one of `frames`); default: the frame labelled last, else the latest")]
EDGE_PX = 2.0  # a box may overhang the frame by rounding, not more
# One key per class, in the legend's order: digits, then the letters the editor does not use itself (s save,
# d dispatch, r reject, n next; j/k/x are the list page's). 29 keys; a class past them has none.
CLASS_KEYS = "1234567890qwetyuiopafghlzcvbm"


def class_keys(classes: tuple[str, ...] | list[str]) -> dict[str, str]:
    """class name → its key."""
    return dict(zip(classes, CLASS_KEYS))


Reviewer = Security(require(Role.REVIEWER, session=True))  # the session cookie (the page) or a reviewer key


def _frame_out(request: Request, state, case: CaseView, sha256: str | None = None) -> LabelFrameOut:
    annotations = Annotations(state.store.db)
    frames = [current_labels(annotations, f) for f in case_frames(state.store, case)]
    at = next((i for i, f in enumerate(frames) if f.frame.frame_sha256 == sha256), None) if sha256 else labelled_frame(frames)
    if at is None:
        raise NotFound(f"case {case.id} has no frame {sha256} in the evidence store" if sha256 else f"case {case.id} has no frame to label in the evidence store (no best frame or metadata)")
    now = frames[at]
    frame = now.frame
    return LabelFrameOut(
        case_id=case.id, frame_sha256=frame.frame_sha256, frame_url=str(request.url_for("evidence", sha256=frame.frame_sha256)), width=frame.width, height=frame.height,
        camera_id=frame.camera_id, model=frame.model, classes=list(label_classes()), proposals=list(frame.proposals), violation=list(frame.violation),
        boxes=list(now.boxes), negatives=list(now.negatives), saved=now.saved,
        frames=[FrameRef(frame_sha256=f.frame.frame_sha256, taken_at=f.frame.taken_at.isoformat(), labelled=f.saved is not None) for f in frames], history=annotations.history(case.id),
    )


@router.get("/{case_id}/label", response_class=HTMLResponse, summary="Box editor for a case's frame (HTML)", responses={401: {"description": "Login form", "content": {"text/html": {}}}, **{c: {**d, "content": _JSON_ERROR} for c, d in error_responses(403, 404, 422).items()}})
def label_page(request: Request, state: State, case_id: CaseId, frame: FrameQuery = None) -> HTMLResponse:
    who = _reviewer(request)
    if not isinstance(who, Principal):  # the login page
        return who
    case = state.store.get(case_id)
    try:
        shown = _frame_out(request, state, case, frame).model_dump(mode="json")
    except NotFound:  # nothing to draw on, but the case can still be decided from here
        shown = {"case_id": case_id, "frame_sha256": None, "width": 1, "height": 1, "frame_url": None, "model": None, "classes": list(label_classes()), "proposals": [], "violation": [], "boxes": [], "negatives": [], "frames": []}
    context = {
        "case": case, **case_facts(case), "frame": shown, "keys": class_keys(shown["classes"]), "owner": owners(state).owner_for(case) or "",
        "reviewer": who.name, "next_id": next_awaiting(state.store, case_id), "awaiting": case.status in AWAITING,
    }
    return templates.TemplateResponse(request, "label.html", context)


@router.get("/{case_id}/boxes", response_model=LabelFrameOut, dependencies=[Reviewer], summary="A case's frame: the model's boxes, the current label set, the history", responses=error_responses(401, 403, 404, 422))
def get_boxes(request: Request, state: State, case_id: CaseId, frame: FrameQuery = None) -> LabelFrameOut:
    return _frame_out(request, state, state.store.get(case_id), frame)


@router.post("/{case_id}/boxes", response_model=AnnotationView, status_code=201, summary="Save a case frame's label set (a new annotation)", responses=error_responses(401, 403, 404, 409, 422))
def save_boxes(request: Request, state: State, case_id: CaseId, body: BoxesIn, who: Principal = Reviewer) -> AnnotationView:
    """409 when `frame_sha256` is not one of the case's frames (or its file is gone)."""
    reviewer = who.name
    frame = case_frame(state.store, state.store.get(case_id), body.frame_sha256)
    if frame is None:
        raise Conflict(f"frame {body.frame_sha256} is not a frame of case {case_id} in the evidence store; reload the editor (GET /review/{case_id}/boxes lists its frames)")
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

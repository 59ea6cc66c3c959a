"""The rectification ledger over HTTP: list, look up, and move cases along the workflow."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Path, Query, Request, Security, UploadFile

from pipeline.cases import CaseView
from pipeline.cases.lifecycle import CaseStatus
from pipeline.domain import FreeText, ViolationType

from ...runtime.errors import Unprocessable
from ..auth import require
from ..deps import State, Store, require_multipart
from ..errors import error_responses
from ..keys import Principal, Role
from ..paging import Paging, page_fields
from ..params import MAX_ID, Timestamp
from ..schemas.cases import CaseList, TransitionIn
from ..uploads import ImageFile, Images

router = APIRouter(prefix="/cases", tags=["cases"])

CaseId = Annotated[int, Path(ge=1, le=MAX_ID, description="Case id")]
# The caller, whose key name is the actor recorded in the history (the router also requires the role).
Reviewer = Annotated[Principal, Security(require(Role.REVIEWER))]


@router.get("", response_model=CaseList, summary="List cases", responses=error_responses(401, 422))
def list_cases(
    store: Store,
    request: Request,
    page: Paging,
    status: CaseStatus | None = None,
    type: ViolationType | None = None,
    district: Annotated[str | None, Query(max_length=100)] = None,
    point: Annotated[str | None, Query(max_length=200)] = None,
    camera_id: Annotated[str | None, Query(max_length=100)] = None,
) -> CaseList:
    """Oldest first; every given filter must match. Follow `next` for the following page."""
    filters = {"status": status, "type": type, "district": district, "point": point, "camera_id": camera_id}
    cases = store.list(**filters, limit=page.limit, offset=page.offset)
    return CaseList(count=len(cases), cases=cases, **page_fields(request, page, store.count(**filters)))


@router.get("/overdue", response_model=CaseList, summary="Dispatched cases past their deadline", responses=error_responses(401, 422))
def overdue(
    store: Store, request: Request, page: Paging,
    at: Annotated[Timestamp | None, Query(description="Reference time (ISO-8601 with zone); default now")] = None,
) -> CaseList:
    """Most overdue first."""
    at = at or datetime.now(UTC)
    cases = store.overdue(at, limit=page.limit, offset=page.offset)
    return CaseList(count=len(cases), cases=cases, **page_fields(request, page, store.overdue_count(at)))


@router.get("/{case_id}", response_model=CaseView, summary="One case with its evidence and history", responses=error_responses(401, 404, 422))
def get_case(store: Store, case_id: CaseId) -> CaseView:
    return store.get(case_id)


@router.post("/{case_id}/transition", response_model=CaseView, summary="Move a case to another status", responses=error_responses(401, 404, 409, 422))
def transition(state: State, who: Reviewer, case_id: CaseId, body: TransitionIn) -> CaseView:
    """409 with the reason when the workflow does not allow the move or it lacks what it needs (an owner to
    dispatch, a reason to reject, a note or after photo to rectify). Rejecting with `fixture` also marks the
    spot as a fixture of the camera, as the review page does (422 for a case that is not a camera's).
    The actor in the history is the calling key's name."""
    if body.fixture and body.to != CaseStatus.REJECTED:
        raise Unprocessable("fixture applies only when rejecting (to: rejected)")
    if body.to == CaseStatus.REJECTED:
        return state.reject(case_id, actor=who.name, reason=body.note or "", fixture=body.fixture).case
    return state.store.transition(case_id, body.to, actor=who.name, note=body.note, owner=body.owner)


@router.post(
    "/{case_id}/rectify",
    response_model=CaseView,
    summary="Mark a case rectified with an after photo",
    dependencies=[Depends(require_multipart)],
    responses=error_responses(401, 404, 409, 413, 415, 422, 503),
)
def rectify(
    store: Store,
    who: Reviewer,
    images: Images,
    case_id: CaseId,
    photo: Annotated[UploadFile, ImageFile(description="The spot after rectification (整改后照片)")],
    note: Annotated[FreeText | None, Form(max_length=2000)] = None,
) -> CaseView:
    """The photo is checked to be a readable image, then stored as the case's `after` evidence. The actor in
    the history is the calling key's name."""
    data, _ = images.read(photo, "photo", detect=False)
    return store.transition(case_id, CaseStatus.RECTIFIED, actor=who.name, note=note, after_photo=data)

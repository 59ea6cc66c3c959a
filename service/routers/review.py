"""GET /review: the annotators' page. Cases awaiting review (detected, reopened) with their evidence, and forms
to dispatch or reject them; a rejection can also mark the spot as a fixture so the camera stops raising it.

Plain server-rendered HTML with a few lines of JS (no CDN: the service may run offline). Forms post here and
get a redirect back (post/redirect/get); an error re-renders the page with the message and its status code.
With an API key configured, a login form sets it as an HttpOnly, SameSite=Strict cookie, which keeps other
sites from posting the forms with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from pipeline import review as decisions
from pipeline.cases import CaseView
from pipeline.cases.lifecycle import CaseStatus
from pipeline.domain import VIOLATION_TYPES

from ..deps import COOKIE, State, key_ok, require_key
from ..errors import Unprocessable, status_of
from ..params import MAX_ID

router = APIRouter(prefix="/review", tags=["review"])
templates = Jinja2Templates(directory=Path(__file__).resolve().parents[1] / "templates")

AWAITING = (CaseStatus.DETECTED, CaseStatus.REOPENED)
CaseId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="Case id")]
_TYPE_ENUM = {"enum": ["", *VIOLATION_TYPES]}  # the filter the page was showing ("" for all), kept across a form post

_PAGE = {"text/html": {"schema": {"type": "string"}}}
_JSON_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}
# The page re-renders itself with the reason on a refusal (HTML); a malformed form or query is JSON like elsewhere.
_REFUSALS = {
    404: {"description": "No such case: the page with the reason", "content": _PAGE},
    409: {"description": "The workflow refuses the move: the page with the reason", "content": _PAGE},
    422: {"description": "Invalid form or query (JSON), or a refused value (the page with the reason)", "content": _PAGE | _JSON_ERROR},
}


def _latest(case: CaseView, kind: str) -> str | None:
    refs = [e for e in case.evidence if e.kind == kind and not e.purged]
    return max(refs, key=lambda e: e.taken_at).sha256 if refs else None


def _row(case: CaseView, tz: ZoneInfo) -> dict:
    local = lambda t: t.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S") if t else "–"  # noqa: E731
    return {
        "case": case,
        "label": VIOLATION_TYPES[case.type].label if case.type in VIOLATION_TYPES else case.type,
        "first_seen": local(case.first_seen),
        "last_seen": local(case.last_seen),
        "crop": _latest(case, "crop") or _latest(case, "best_frame"),
        "context": _latest(case, "context"),
        "can_fixture": case.source == "camera" and case.camera_id is not None and case.box is not None,
    }


def _page(request: Request, state, *, type: str | None, district: str | None, message: str | None = None, error: str | None = None, status: int = 200) -> HTMLResponse:
    store = state.store
    cases = sorted((c for s in AWAITING for c in store.list(status=s, type=type or None)), key=lambda c: c.id)
    districts = sorted({c.location.district for c in cases})
    if district:
        cases = [c for c in cases if c.location.district == district]
    tz = ZoneInfo(store.config.report_timezone)
    context = {
        "rows": [_row(c, tz) for c in cases], "types": {t: k.label for t, k in VIOLATION_TYPES.items()}, "districts": districts, "type": type or "", "district": district or "",
        "message": message, "error": error, "tz": store.config.report_timezone,
    }
    return templates.TemplateResponse(request, "review.html", context, status_code=status)


def _back(request: Request, type: str, district: str, message: str) -> RedirectResponse:
    query = urlencode({k: v for k, v in (("type", type), ("district", district), ("msg", message)) if v})
    return RedirectResponse(f"{request.url_for('review')}?{query}", status_code=303)


def _clean_type(type: str | None) -> str | None:
    if type and type not in VIOLATION_TYPES:
        raise Unprocessable(f"unknown type {type!r}; valid: {', '.join(VIOLATION_TYPES)}")
    return type or None


@router.get(
    "", response_class=HTMLResponse, summary="Review page: cases awaiting review (HTML)",
    responses={401: {"description": "Login form (an API key is configured)", "content": _PAGE}, 422: {"description": "Unknown type or invalid query", "content": _JSON_ERROR}},
)
def review(
    request: Request, state: State,
    type: Annotated[str | None, Query(description="Violation type to show; empty: all", json_schema_extra=_TYPE_ENUM)] = None,
    district: Annotated[str | None, Query(max_length=100)] = None, msg: Annotated[str | None, Query(max_length=2000)] = None,
) -> HTMLResponse:
    given = request.headers.get("x-api-key") or request.cookies.get(COOKIE)
    if not key_ok(state, given):
        return templates.TemplateResponse(request, "login.html", {"error": None}, status_code=401)
    return _page(request, state, type=_clean_type(type), district=district, message=msg)


@router.post(
    "/login", response_class=RedirectResponse, status_code=303, summary="Log in to the review page with the API key",
    responses={401: {"description": "Wrong key", "content": _PAGE}, 422: {"description": "Invalid form", "content": _JSON_ERROR}},
)
def login(request: Request, state: State, key: Annotated[str, Form(min_length=1, max_length=500)]):
    if state.settings.api_key is None or not key_ok(state, key):
        return templates.TemplateResponse(request, "login.html", {"error": "wrong key" if state.settings.api_key else "no key is configured; open /review"}, status_code=401)
    response = RedirectResponse(str(request.url_for("review")), status_code=303)
    response.set_cookie(COOKIE, key, httponly=True, samesite="strict", secure=request.url.scheme == "https")
    return response


def _act(request: Request, state, type: str, district: str, action) -> HTMLResponse | RedirectResponse:
    """Run a review action; success redirects back to the page, a refusal re-renders it with the reason."""
    try:
        return _back(request, type, district, action())
    except Exception as e:
        known = status_of(e)
        if known is None:
            raise
        status, message = known
        return _page(request, state, type=_clean_type(type), district=district, error=message, status=status)


@router.post(
    "/{case_id}/dispatch", response_class=RedirectResponse, status_code=303, dependencies=[Depends(require_key)],
    summary="Dispatch a case to its point owner (form)", responses={401: {"description": "Missing or wrong API key", "content": _JSON_ERROR}, **_REFUSALS},
)
def dispatch(
    request: Request, state: State, case_id: CaseId,
    actor: Annotated[str, Form(min_length=1, max_length=200)], owner: Annotated[str, Form(max_length=200)] = "",
    type: Annotated[str, Form(json_schema_extra=_TYPE_ENUM)] = "", district: Annotated[str, Form(max_length=100)] = "",
):
    def action() -> str:
        case = decisions.dispatch(state.store, case_id, actor=actor, owner=owner.strip() or None)
        return f"case {case.id} dispatched to {case.owner}"

    return _act(request, state, type, district, action)


@router.post(
    "/{case_id}/reject", response_class=RedirectResponse, status_code=303, dependencies=[Depends(require_key)],
    summary="Reject a case as a false alarm, optionally marking the spot as a fixture (form)", responses={401: {"description": "Missing or wrong API key", "content": _JSON_ERROR}, **_REFUSALS},
)
def reject(
    request: Request, state: State, case_id: CaseId,
    actor: Annotated[str, Form(min_length=1, max_length=200)], reason: Annotated[str, Form(max_length=2000)] = "",
    fixture: Annotated[bool, Form(description="Also add fixtures so the camera stops raising this spot")] = False,
    type: Annotated[str, Form(json_schema_extra=_TYPE_ENUM)] = "", district: Annotated[str, Form(max_length=100)] = "",
):
    def action() -> str:
        return state.reject(case_id, actor=actor, reason=reason, fixture=fixture).message()

    return _act(request, state, type, district, action)

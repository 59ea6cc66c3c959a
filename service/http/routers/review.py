"""GET /review: the annotators' page. Cases awaiting review (detected, reopened) with their evidence, and forms
to dispatch or reject them; a rejection can also mark the spot as a fixture so the camera stops raising it.

Plain server-rendered HTML (no CDN: the service may run offline), one page of cases at a time. Forms post here
and get a redirect back (post/redirect/get); an error re-renders the page with the message and its status code.

Login: a reviewer (or admin) key is exchanged for a session: a random token in an HttpOnly, SameSite=Strict
cookie, stored hashed with an expiry; the key itself never goes into the cookie. Every form post must come from
the service's own origin (`csrf.py`: SameSite stops other sites, not other ports of the same host). Every
decision is recorded under the key's name. Logout deletes the session.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from pydantic import AfterValidator, Field

from pipeline.review import decisions
from pipeline.review.owners import OwnerBook
from pipeline.cases import CaseView
from pipeline.cases.lifecycle import AWAITING
from pipeline.domain import VIOLATION_TYPES, FreeText, PlaceText
from pipeline.evidence import static_evidence

from ...runtime.errors import Unprocessable
from ..auth import HEADER, OPEN_WARNING, SESSION_COOKIE, get_auth, identify, refuse_failure
from .. import display
from ..csrf import REFUSED, same_origin
from ..deps import State
from ..errors import PageRefused, TooManyRequests, status_of
from ..keys import Principal, Role
from ..params import MAX_ID, MAX_OFFSET

router = APIRouter(prefix="/review", tags=["review"], dependencies=[Depends(same_origin)])
templates = display.install(Jinja2Templates(directory=Path(__file__).resolve().parents[1] / "templates"))  # invisible characters shown

PAGE_SIZE = 50
CaseId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="Case id")]
_TYPE_ENUM = {"enum": ["", *VIOLATION_TYPES]}  # the filter the page was showing ("" for all), kept across a form post


def _type_filter(value: str) -> str:
    """The page's type filter sent back with a form: empty or a known type, else 422 (as the schema's enum says)."""
    if value and value not in VIOLATION_TYPES:
        raise ValueError(f"unknown violation type {value!r}; known: {', '.join(VIOLATION_TYPES)} (or empty for all)")
    return value


TypeFilter = Annotated[str, AfterValidator(_type_filter), Form(json_schema_extra=_TYPE_ENUM)]

_PAGE = {"text/html": {"schema": {"type": "string"}}}
_JSON_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}


def _latest(case: CaseView, kind: str) -> str | None:
    refs = [e for e in case.evidence if e.kind == kind and not e.purged]
    return max(refs, key=lambda e: e.taken_at).sha256 if refs else None


def case_facts(case: CaseView) -> dict:
    """What both review pages show of a case beside its data: its type's label, and whether a fixture can mark its spot."""
    return {
        "label": VIOLATION_TYPES[case.type].label if case.type in VIOLATION_TYPES else case.type,
        "can_fixture": case.source == "camera" and case.camera_id is not None and case.box is not None,
    }


def owners(state) -> OwnerBook:
    """Owners as the camera config names them; read without the engine lock (a reference read), so the review
    page never waits behind a frame."""
    return OwnerBook.of(state.cameras.source.config)


def _row(case: CaseView, tz: ZoneInfo, files, book: OwnerBook) -> dict:
    local = lambda t: t.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S") if t else "–"  # noqa: E731
    static = static_evidence(files, _latest(case, "metadata"), case.last_seen) if case.source == "camera" else []
    return {
        "static": [{"appeared": local(o.appeared_at), "stayed": o.stayed, "box": [int(v) for v in o.box]} for o in static],
        "case": case,
        **case_facts(case),
        "first_seen": local(case.first_seen),
        "last_seen": local(case.last_seen),
        "crop": _latest(case, "crop") or _latest(case, "best_frame"),
        "context": _latest(case, "context"),
        "owner": book.owner_for(case) or "",
    }


def _page(
    request: Request, state, who: Principal, *, type: str | None, district: str | None, offset: int = 0, limit: int = PAGE_SIZE,
    message: str | None = None, error: str | None = None, status: int = 200,
) -> HTMLResponse:
    """One page of the cases awaiting review, oldest first; the database does the filtering and paging."""
    store = state.store
    filters = {"status": AWAITING, "type": type or None, "district": district or None}
    total = store.count(**filters)
    cases = store.list(**filters, limit=limit, offset=offset)
    tz = ZoneInfo(store.config.report_timezone)
    book = owners(state)  # one book for the page, not one per row

    def link(at: int) -> str:
        query = {"type": type, "district": district, "offset": at, "limit": limit if limit != PAGE_SIZE else None}
        return f"{request.url_for('review')}?{urlencode({k: v for k, v in query.items() if v})}"

    context = {
        "rows": [_row(c, tz, store.evidence, book) for c in cases], "types": {t: k.label for t, k in VIOLATION_TYPES.items()}, "districts": store.districts(status=AWAITING, type=type or None),
        "type": type or "", "district": district or "", "message": message, "error": error, "tz": store.config.report_timezone,
        "who": who, "warnings": [w for w in get_auth(request).warnings() if who.role == Role.ADMIN or w == OPEN_WARNING],
        "total": total, "offset": offset, "first": offset + 1 if cases else 0, "last": offset + len(cases),
        "prev_url": link(max(offset - limit, 0)) if offset > 0 else None, "next_url": link(offset + limit) if offset + limit < total else None,
    }
    return templates.TemplateResponse(request, "review.html", context, status_code=status)


def _login_page(request: Request, error: str | None, status: int, *, forget: bool = False, headers: dict | None = None) -> HTMLResponse:
    response = templates.TemplateResponse(request, "login.html", {"error": error}, status_code=status, headers=headers)
    if forget:
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


def _reviewer(request: Request) -> Principal | HTMLResponse:
    """The logged-in reviewer (session cookie, or a key header for scripts), else the login page to answer with."""
    cookie = request.cookies.get(SESSION_COOKIE)
    who = identify(request, request.headers.get(HEADER), cookie)
    if who is None:
        return _login_page(request, "your session has ended: log in again" if cookie else None, 401, forget=cookie is not None)
    if not who.allows(Role.REVIEWER):
        return _login_page(request, f"the key of {who.name!r} is a {who.role.value} key; the review page needs a reviewer key", 403)
    return who


def _page_reviewer(request: Request) -> Principal:
    """`_reviewer` as a dependency: anyone else gets the login page before the form or query is validated (so a
    caller without access learns nothing about them, and sees 401/403, never 422)."""
    who = _reviewer(request)
    if not isinstance(who, Principal):
        raise PageRefused(who)
    return who


ReviewerPage = Annotated[Principal, Depends(_page_reviewer)]


def _back(request: Request, type: str, district: str, offset: int, message: str) -> RedirectResponse:
    query = urlencode({k: v for k, v in (("type", type), ("district", district), ("offset", offset), ("msg", message)) if v})
    return RedirectResponse(f"{request.url_for('review')}?{query}", status_code=303)


def _clean_type(type: str | None) -> str | None:
    if type and type not in VIOLATION_TYPES:
        raise Unprocessable(f"unknown type {type!r}; valid: {', '.join(VIOLATION_TYPES)}")
    return type or None


HTML = {"content": _PAGE}
JSON_422 = {422: {"description": "Invalid form or query", "content": _JSON_ERROR}}


@router.get(
    "", response_class=HTMLResponse, summary="Review page: cases awaiting review, one page at a time (HTML)",
    responses={401: {"description": "Login form (no or an ended session)", **HTML}, 403: {"description": "Not a reviewer key", **HTML}, **JSON_422},
)
def review(
    request: Request, state: State,
    type: Annotated[str | None, Query(description="Violation type to show; empty: all", json_schema_extra=_TYPE_ENUM)] = None, district: Annotated[str | None, Query(max_length=100)] = None, msg: Annotated[str | None, Query(max_length=500)] = None,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0, limit: Annotated[int, Query(ge=1, le=200)] = PAGE_SIZE,
) -> HTMLResponse:
    who = _reviewer(request)
    if isinstance(who, HTMLResponse):
        return who
    return _page(request, state, who, type=_clean_type(type), district=district, offset=offset, limit=limit, message=msg)


@router.post(
    "/login", response_class=RedirectResponse, status_code=303, summary="Log in to the review page with a reviewer key (form)",
    responses={401: {"description": "Wrong or revoked key", **HTML}, **REFUSED, 429: {"description": "A wrong key past the failure limits (a right key still logs in)", **HTML}, **JSON_422},
)
def login(request: Request, state: State, key: Annotated[str, Form(min_length=1, max_length=500)]):
    """Opens a session (a new random token; the key is not kept) and sets its cookie. Failed logins count
    against the client address and the whole service (429 with Retry-After past the limits); a right key
    always logs in."""
    auth = get_auth(request)
    who = auth.verify_key(key.strip())
    if who is None:
        try:
            refuse_failure(request, login=True)
        except TooManyRequests as e:
            return _login_page(request, e.detail, 429, headers=e.headers)
        return _login_page(request, "wrong or revoked key", 401)
    if who.key_id is None:
        return _login_page(request, "the legacy STREETORDER_API_KEY cannot log in: create a reviewer key with `streetorder keys create --role reviewer --name NAME`", 403)
    if not who.allows(Role.REVIEWER):
        return _login_page(request, f"a {who.role.value} key cannot log in to the review page; use a reviewer key", 403)
    ttl = timedelta(hours=state.settings.session_hours)
    token, _ = auth.keys.open_session(who, ttl)
    response = RedirectResponse(str(request.url_for("review")), status_code=303)
    response.set_cookie(SESSION_COOKIE, token, max_age=int(ttl.total_seconds()), path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https")
    return response


@router.post("/logout", response_class=RedirectResponse, status_code=303, summary="Log out of the review page (ends the session)", responses=REFUSED)
def logout(request: Request):
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        get_auth(request).keys.close_session(token)
    response = RedirectResponse(str(request.url_for("review")), status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


def _act(request: Request, state, type: str, district: str, offset: int, action) -> HTMLResponse | RedirectResponse:
    """Run a review action as the logged-in reviewer; success redirects back to the page, a refusal re-renders
    it with the reason."""
    who = _reviewer(request)
    if isinstance(who, HTMLResponse):
        return who
    try:
        return _back(request, type, district, offset, action(who.name))
    except Exception as e:
        known = status_of(e)
        if known is None:
            raise
        status, message = known
        return _page(request, state, who, type=_clean_type(type), district=district, offset=offset, error=message, status=status)


# The page re-renders itself with the reason on a refusal (HTML); a malformed form is JSON like elsewhere.
ACTION_RESPONSES = {
    401: {"description": "Login form (no or an ended session)", **HTML},
    404: {"description": "No such case: the page with the reason", **HTML},
    409: {"description": "The workflow refuses the move: the page with the reason", **HTML},
    422: {"description": "Invalid form (JSON), or a refused value (the page with the reason)", "content": _PAGE | _JSON_ERROR},
    429: {"description": "Too many wrong keys from this address", "content": _JSON_ERROR},
} | REFUSED
Offset = Annotated[int, Form(ge=0, le=MAX_OFFSET)]


@router.post(
    "/{case_id}/dispatch", response_class=RedirectResponse, status_code=303,
    summary="Dispatch a case to its point owner (form)", responses=ACTION_RESPONSES,
)
def dispatch(
    request: Request, state: State, case_id: CaseId, owner: Annotated[PlaceText, Form(max_length=200)] = "",
    type: TypeFilter = "", district: Annotated[str, Form(max_length=100)] = "", offset: Offset = 0,
):
    def action(actor: str) -> str:
        chosen = owner.strip() or owners(state).owner_for(state.store.get(case_id))  # empty: the case's 点位长
        case = decisions.dispatch(state.store, case_id, actor=actor, owner=chosen, source="review-page")
        return f"case {case.id} dispatched to {case.owner}"

    return _act(request, state, type, district, offset, action)


@router.post(
    "/{case_id}/reject", response_class=RedirectResponse, status_code=303,
    summary="Reject a case as a false alarm, optionally marking the spot as a fixture (form)", responses=ACTION_RESPONSES,
)
def reject(
    request: Request, state: State, case_id: CaseId, reason: Annotated[FreeText, Form(max_length=2000)] = "",
    fixture: Annotated[bool, Form(description="Also add fixtures so the camera stops raising this spot")] = False,
    type: TypeFilter = "", district: Annotated[str, Form(max_length=100)] = "", offset: Offset = 0,
):
    def action(actor: str) -> str:
        return state.reject(case_id, actor=actor, reason=reason, fixture=fixture, source="review-page").message()

    return _act(request, state, type, district, offset, action)


MAX_BULK = 200  # case ids in one post; each at most 2**53 (exact as a JSON number, unlike MAX_ID)


@router.post(
    "/bulk", response_class=RedirectResponse, status_code=303,
    summary="Dispatch or reject several cases at once (form)", responses=ACTION_RESPONSES,
)
def bulk(
    request: Request, state: State, who: ReviewerPage,
    case_id: Annotated[list[Annotated[int, Field(ge=1, le=2**53)]], Form(min_length=1, max_length=MAX_BULK, description=f"The selected cases (1 to {MAX_BULK})")],
    action: Annotated[Literal["dispatch", "reject"], Form(description="dispatch (each to its 点位长) or reject (all with `reason`)")],
    reason: Annotated[FreeText, Form(max_length=2000)] = "",
    type: TypeFilter = "", district: Annotated[str, Form(max_length=100)] = "", offset: Offset = 0,
):
    """Each case is decided on its own through the same decisions as the single forms (`pipeline.review.decisions`):
    one refused case (no owner, already decided) does not stop the others; the page says which were refused and why."""
    ids = list(dict.fromkeys(case_id))
    book = owners(state)
    done: list[str] = []
    refused: list[tuple[int, str]] = []
    for i in ids:
        try:
            if action == "dispatch":
                case = decisions.dispatch(state.store, i, actor=who.name, owner=book.owner_for(state.store.get(i)), source="review-page")
                done.append(f"#{case.id} → {case.owner}")
            else:
                state.reject(i, actor=who.name, reason=reason, fixture=False, source="review-page")
                done.append(f"#{i}")
        except Exception as e:
            known = status_of(e)
            if known is None:
                raise
            refused.append((known[0], known[1] if f"case {i}" in known[1] else f"case {i}: {known[1]}"))
    verb = "dispatched" if action == "dispatch" else "rejected"
    message = f"{len(done)} case(s) {verb}: {', '.join(done)}" if done else None
    if not refused:
        return _back(request, type, district, offset, message)
    error = f"{len(refused)} of {len(ids)} refused: " + "; ".join(m for _, m in refused)
    return _page(request, state, who, type=_clean_type(type), district=district, offset=offset, message=message, error=error, status=refused[0][0])

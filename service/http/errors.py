"""Every failure becomes a JSON `{"detail": ...}` with a status that says whose fault it was, and the service
stays up. The service's own errors are plain exceptions (`service.runtime.errors`: the runtime knows nothing of
HTTP; the refusals only HTTP makes, such as a missing key, are here); this module maps them, and the library's,
to status codes in one place."""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.exc import DataError, DBAPIError

from pipeline.cases.errors import CaseNotFound, EvidenceError, InvalidTransition, LedgerError
from pipeline.config import ConfigError
from pipeline.config.load import FixtureConflict, UnknownCamera, UnknownFixture
from pipeline.db.storage import StorageError
from pipeline.source.images import ImageError

from ..runtime.errors import Accepted, ServiceError

log = logging.getLogger(__name__)


class ErrorOut(BaseModel):
    """The body of every error response."""

    detail: str | list


class QueuedOut(BaseModel):
    """The answer when the ledger is down: the upload was processed, its reports are journaled, do not resend."""

    detail: str
    queued: int = Field(description="Incident reports waiting for the ledger, this upload's included")


class UnsupportedMediaType(ServiceError):
    status = 415


class Unauthorized(ServiceError):
    status = 401


class Forbidden(ServiceError):
    """A valid key whose role may not do this."""

    status = 403


class TooManyRequests(ServiceError):
    """Too many failed authentications; `Retry-After` says when to try again."""

    status = 429

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.headers = {"Retry-After": str(retry_after)}


# Library errors, most specific first (CaseNotFound is a LedgerError).
_LIBRARY: tuple[tuple[type[Exception], int], ...] = (
    (ImageError, 422),
    (CaseNotFound, 404),
    (UnknownCamera, 404),
    (UnknownFixture, 404),
    (FixtureConflict, 409),
    (InvalidTransition, 409),
    (EvidenceError, 404),
    (LedgerError, 422),
    (ConfigError, 422),
    (StorageError, 503),  # the ledger's disk is full or read-only: not the caller's fault, nothing was accepted
)



def status_of(e: Exception) -> tuple[int, str] | None:
    """(status, message) for a service or library error, None for anything else: the one error-to-status map,
    used by the JSON handlers below and by the review page's HTML answers."""
    if isinstance(e, ServiceError):
        return e.status, e.detail
    for exc_type, status in _LIBRARY:
        if isinstance(e, exc_type):
            return status, str(e)
    return None


# Shown in the OpenAPI schema of routes that can answer with them.
RESPONSES = {code: {"model": ErrorOut} for code in (401, 403, 404, 409, 413, 415, 422, 429, 503)}


def error_responses(*codes: int) -> dict:
    return {c: RESPONSES[c] for c in codes}


async def send_refusal(send, status: int, detail: str, headers: list[tuple[bytes, bytes]] = ()) -> None:
    """Answer `{"detail": ...}` with `status` straight to ASGI `send`: for the middlewares that refuse a request
    before (or instead of) the app (body limit and timeout, the admission gate)."""
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


def _json(status: int, detail, headers: dict[str, str] | None = None) -> JSONResponse:
    headers = {**({"WWW-Authenticate": "APIKey"} if status == 401 else {}), **(headers or {})} or None
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


# Uploads whose reports may wait for the ledger.
QUEUED = {202: {"model": QueuedOut, "description": "Processed; the ledger is unavailable, so its incident reports are journaled and posted later (do not resend)"}}


def _allowed_methods(request: Request) -> list[str]:
    """The methods some route of the app takes at this path (asked of the routes themselves, one method at a time)."""
    routes = request.app.router.routes
    return [m for m in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE") if any(r.matches({**request.scope, "method": m})[0] == Match.FULL for r in routes)]


class PageRefused(Exception):
    """An HTML page's own refusal (its login page, 401 or 403), raised from a dependency so that it comes before
    the page's query parameters are validated: a caller without access learns nothing about them (no 422)."""

    def __init__(self, response: Response):
        super().__init__(response.status_code)
        self.response = response


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(PageRefused)
    async def _page_refused(_: Request, e: PageRefused) -> Response:
        return e.response

    @app.exception_handler(ServiceError)
    async def _service(_: Request, e: ServiceError) -> JSONResponse:
        headers = dict(getattr(e, "headers", None) or {})
        retry = getattr(e, "retry_after_s", None)
        if retry is not None:
            headers["Retry-After"] = str(retry)
        return _json(e.status, e.detail, headers or None)

    @app.exception_handler(Accepted)
    async def _accepted(_: Request, e: Accepted) -> JSONResponse:
        return JSONResponse({"detail": e.detail, "queued": e.queued}, status_code=202)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, e: StarletteHTTPException) -> JSONResponse:
        # The framework's own refusals: a body it cannot parse (400, e.g. broken multipart) is bad input like
        # any other, so 422 as documented; the rest keep their status in the same JSON shape.
        status = 422 if e.status_code == 400 else e.status_code
        headers = dict(getattr(e, "headers", None) or {})
        if status == 405:  # Allow: every method of the path, not only those of the first route that matched it
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return JSONResponse({"detail": e.detail}, status_code=status, headers=headers or None)

    for exc_type, status in _LIBRARY:
        app.add_exception_handler(exc_type, lambda _r, e, status=status: _json(status, str(e)))

    @app.exception_handler(DataError)
    async def _refused(_: Request, e: DataError) -> JSONResponse:
        # a value the database cannot store (a NUL byte in text on PostgreSQL, a number out of range): bad input
        return _json(422, f"the ledger database refused a value: {str(e.orig).splitlines()[0] if e.orig else e}")

    @app.exception_handler(DBAPIError)
    async def _database(_: Request, e: DBAPIError) -> JSONResponse:
        log.error("ledger database error: %s", e)
        return _json(503, f"the ledger database is unavailable ({type(e.orig).__name__}); try again shortly")

    @app.exception_handler(RequestValidationError)
    async def _request(_: Request, e: RequestValidationError) -> JSONResponse:
        return _json(422, [{"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")} for err in e.errors()])

    @app.exception_handler(ValidationError)
    async def _model(_: Request, e: ValidationError) -> JSONResponse:
        return _json(422, [{"loc": list(err["loc"]), "msg": err["msg"].removeprefix("Value error, "), "type": err["type"]} for err in e.errors()])

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, e: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _json(500, f"internal error ({type(e).__name__}); the service is still running, see its log")

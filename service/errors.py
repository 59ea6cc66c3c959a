"""Every failure becomes a JSON `{"detail": ...}` with a status that says whose fault it was, and the service
stays up. The service's own errors are plain exceptions (the state module knows nothing of HTTP); this module
maps them, and the library's, to status codes in one place."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import DBAPIError

from pipeline.cases.errors import CaseNotFound, EvidenceError, InvalidTransition, LedgerError
from pipeline.config import ConfigError
from pipeline.config.load import FixtureConflict, UnknownCamera
from pipeline.images import ImageError

log = logging.getLogger(__name__)


class ErrorOut(BaseModel):
    """The body of every error response."""

    detail: str | list


class ServiceError(Exception):
    """An error with a status code and a message fit for the caller."""

    status = 500

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(ServiceError):
    status = 404


class Conflict(ServiceError):
    """The request is well-formed but clashes with the service's state (frame order, config without fixtures file)."""

    status = 409


class Unprocessable(ServiceError):
    status = 422


class TooLarge(ServiceError):
    status = 413


class UnsupportedMediaType(ServiceError):
    status = 415


class Unavailable(ServiceError):
    """Not the caller's fault and maybe temporary: no model loaded, the ledger unreachable."""

    status = 503


class Overloaded(Unavailable):
    """Too busy right now (detector queue full, memory budget taken): 503 with Retry-After, try again shortly."""

    def __init__(self, detail: str, retry_after_s: int = 1) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class Unauthorized(ServiceError):
    status = 401


# Library errors, most specific first (CaseNotFound is a LedgerError).
_LIBRARY: tuple[tuple[type[Exception], int], ...] = (
    (ImageError, 422),
    (CaseNotFound, 404),
    (UnknownCamera, 404),
    (FixtureConflict, 409),
    (InvalidTransition, 409),
    (EvidenceError, 404),
    (LedgerError, 422),
    (ConfigError, 422),
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
RESPONSES = {code: {"model": ErrorOut} for code in (401, 404, 409, 413, 415, 422, 503)}


def error_responses(*codes: int) -> dict:
    return {c: RESPONSES[c] for c in codes}


def _json(status: int, detail, headers: dict[str, str] | None = None) -> JSONResponse:
    headers = {"WWW-Authenticate": "APIKey"} if status == 401 else headers
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service(_: Request, e: ServiceError) -> JSONResponse:
        retry = getattr(e, "retry_after_s", None)
        return _json(e.status, e.detail, {"Retry-After": str(retry)} if retry is not None else None)

    for exc_type, status in _LIBRARY:
        app.add_exception_handler(exc_type, lambda _r, e, status=status: _json(status, str(e)))

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

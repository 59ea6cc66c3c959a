"""FastAPI dependencies: the service state, the ledger, auth, and the request checks uploads share."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyCookie, APIKeyHeader

from pipeline.cases import CaseStore

from .errors import Unauthorized, UnsupportedMediaType
from .state import ServiceState

COOKIE = "streetorder_key"
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="The service's API key ($STREETORDER_API_KEY)")
_cookie = APIKeyCookie(name=COOKIE, auto_error=False, description="Set by the review page's login form")


def get_state(request: Request) -> ServiceState:
    return request.app.state.service


State = Annotated[ServiceState, Depends(get_state)]


def get_store(state: State) -> CaseStore:
    return state.store


Store = Annotated[CaseStore, Depends(get_store)]


def base_url(request: Request) -> str:
    """Absolute links in responses: the configured public URL, else the address the client used."""
    public = request.app.state.service.settings.public_url
    return public or str(request.base_url).rstrip("/")


BaseUrl = Annotated[str, Depends(base_url)]


def key_ok(state: ServiceState, given: str | None) -> bool:
    expected = state.settings.api_key
    return expected is None or (given is not None and secrets.compare_digest(given.encode(), expected.get_secret_value().encode()))


def require_key(state: State, header: str | None = Security(_header), cookie: str | None = Security(_cookie)) -> None:
    """Every route but health (and evidence, if public) needs the key, as the X-API-Key header or the review cookie."""
    if not (key_ok(state, header) or (cookie is not None and key_ok(state, cookie))):
        raise Unauthorized("missing or wrong API key: send it in the X-API-Key header")


def require_key_for_evidence(state: State, header: str | None = Security(_header), cookie: str | None = Security(_cookie)) -> None:
    if not state.settings.evidence_public:
        require_key(state, header, cookie)


def require_multipart(request: Request) -> None:
    """Upload routes take multipart/form-data; anything else is told so (415) instead of 'field required'."""
    ctype = request.headers.get("content-type", "")
    if not ctype.lower().startswith("multipart/form-data"):
        raise UnsupportedMediaType(f"send multipart/form-data (e.g. curl -F image=@photo.jpg), not {ctype or 'no content type'}")

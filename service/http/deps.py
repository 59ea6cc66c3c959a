"""FastAPI dependencies: the service state, the ledger, and the request checks uploads share (auth: `auth.py`).

They are `async def` because they do no I/O: FastAPI runs a plain `def` dependency on a worker thread, and
each such hop cost an upload request a thread switch on the cores the detector needs."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from pipeline.cases import CaseStore

from .errors import UnsupportedMediaType
from ..runtime.state import ServiceState


async def get_state(request: Request) -> ServiceState:
    return request.app.state.service


State = Annotated[ServiceState, Depends(get_state)]


async def get_store(state: State) -> CaseStore:
    return state.store


Store = Annotated[CaseStore, Depends(get_store)]


async def base_url(request: Request) -> str:
    """Absolute links in responses: the configured public URL, else the address the client used."""
    public = request.app.state.service.settings.public_url
    return public or str(request.base_url).rstrip("/")


BaseUrl = Annotated[str, Depends(base_url)]


async def require_multipart(request: Request) -> None:
    """Upload routes take multipart/form-data; anything else is told so (415) instead of 'field required'."""
    ctype = request.headers.get("content-type", "")
    if not ctype.lower().startswith("multipart/form-data"):
        raise UnsupportedMediaType(f"send multipart/form-data (e.g. curl -F image=@photo.jpg), not {ctype or 'no content type'}")

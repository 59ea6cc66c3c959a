"""Inference requests are admitted, or refused with 503 + Retry-After, before their body is read.

FastAPI reads a route's whole multipart body before any dependency runs, so a refusal made in the route comes
after the upload was received and parsed on the event loop: in a burst of 96 that put ~0.2-0.5 s of other
requests' parsing in front of each refusal, and of `/health`. This ASGI middleware asks the admission
(`service.runtime.admission`) first, on the path and the key alone, and answers a refused request without touching its
body; an admitted one carries its place (`Admitted`) to the route in the ASGI scope and gives it back when the
answer is sent.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..runtime.admission import Admission, Admitted
from ..runtime.errors import Overloaded
from .auth import Auth
from .errors import send_refusal

KNOWN_S = 600.0  # a key answered other than 401 is admitted at the gate for this long after
MAX_KNOWN = 10_000
INFERENCE_PATHS = frozenset({"/detect", "/frames", "/photos"})
SCOPE_KEY = "streetorder.admitted"


class AdmissionGate:
    """Only a request with a key that passed authentication lately (here within `KNOWN_S`, or in the key cache)
    is admitted here, on its header alone; any other goes through authentication first and is admitted by the
    route's `admitted` dependency once its key is known, so a client without a key cannot hold places with slow
    uploads. (Whether the key is still valid is for authentication to say, after: this only decides where a
    request waits its turn.)"""

    def __init__(self, app: ASGIApp, admission: Admission, auth: Auth) -> None:
        self.app = app
        self.admission = admission
        self.auth = auth
        self._known: OrderedDict[bytes, float] = OrderedDict()  # sha256 of keys that were answered other than 401

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in INFERENCE_PATHS:
            await self.app(scope, receive, send)
            return
        key = next((v for k, v in scope["headers"] if k == b"x-api-key"), None)
        digest = hashlib.sha256(key).digest() if key is not None else None
        if not self._is_known(key, digest):
            await self.app(scope, receive, self._learning(send, digest))
            return
        place = self.admission.admit()
        try:
            admitted = place.__enter__()
        except Overloaded as e:
            await _refuse(send, e)
            return
        scope[SCOPE_KEY] = admitted  # in place: the router writes the matched route into this same scope (request_timer.py reads it)
        try:
            await self.app(scope, receive, send)
        finally:
            place.__exit__(None, None, None)


    def _is_known(self, key: bytes | None, digest: bytes | None) -> bool:
        if key is None or digest is None:
            return False
        seen = self._known.get(digest)
        if seen is not None and time.monotonic() - seen < KNOWN_S:
            return True
        return self.auth.cached_key(key.decode("latin-1")) is not None

    def _learning(self, send: Send, digest: bytes | None) -> Send:
        """`send`, noting a key whose request got past authentication."""
        if digest is None:
            return send

        async def noting(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] not in (401, 429):
                self._known[digest] = time.monotonic()
                self._known.move_to_end(digest)
                while len(self._known) > MAX_KNOWN:
                    self._known.popitem(last=False)
            await send(message)

        return noting


async def _refuse(send: Send, e: Overloaded) -> None:
    await send_refusal(send, 503, e.detail, [(b"retry-after", str(e.retry_after_s).encode())])


async def admitted(request: Request) -> AsyncIterator[Admitted]:
    """The route's place in the admission: taken by `AdmissionGate`, else here, after the key was checked (the
    router's auth dependency runs first). Refused: 503 with Retry-After."""
    if SCOPE_KEY in request.scope:
        yield request.scope[SCOPE_KEY]
        return
    with request.app.state.service.detector.admission.admit() as place:
        yield place


Job = Annotated[Admitted, Depends(admitted)]

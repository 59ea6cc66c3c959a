"""Uploads: a hard cap on request bodies, and turning an uploaded file into an image or a clear refusal."""

from __future__ import annotations

import json

import numpy as np
from fastapi import UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipeline.images import decode_image

from .errors import UnsupportedMediaType

# Declared types an image upload may carry; the bytes decide in the end (decode_image), this only turns away
# what says outright that it is not an image.
IMAGE_TYPES = ("image/", "application/octet-stream")


class BodyLimit:
    """Refuse request bodies over `limit` bytes with 413.

    A declared Content-Length over the limit is refused before anything is read. A body without one (chunked)
    or lying about it is counted as it streams and cut off at the limit: the app's own answer is replaced by
    the 413, so nothing beyond the limit is buffered, parsed or spooled to disk.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send, int(declared))
            return
        seen = 0
        exceeded = False
        started = False

        async def limited_receive() -> Message:
            nonlocal seen, exceeded
            if exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    exceeded = True
                    return {"type": "http.disconnect"}  # the app stops reading here
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                if not started and message["type"] == "http.response.start":
                    started = True
                    await self._refuse(send, seen)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:  # the app gave up without answering (client disconnect path)
            await self._refuse(send, seen)

    async def _refuse(self, send: Send, size: int) -> None:
        body = json.dumps({"detail": f"request body too large: {size:,} bytes or more; the limit is {self.limit:,} bytes"}).encode()
        await send({"type": "http.response.start", "status": 413, "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def read_image(upload: UploadFile, field: str = "image") -> tuple[bytes, np.ndarray]:
    """The upload's bytes and the decoded BGR image; 415 for a declared non-image type, 422 (ImageError) for bad bytes."""
    ctype = (upload.content_type or "").lower()
    if ctype and not ctype.startswith(IMAGE_TYPES):
        raise UnsupportedMediaType(f"{field}: expected an image (JPEG, PNG, WebP, BMP, TIFF), got content type {upload.content_type}")
    upload.file.seek(0)
    data = upload.file.read()
    return data, decode_image(data, upload.filename or field)

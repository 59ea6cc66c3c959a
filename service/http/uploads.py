"""Uploads: a hard cap on request bodies, and turning an uploaded file into an image or a clear refusal, inside
the image memory budget (`service.runtime.decode_budget`).

Memory: a decoded image takes about 10-14 bytes a pixel at its peak (pipeline/source/images.py), so a 77 KB PNG of
80000 x 1000 px would take ~1 GB. Its size is read from the header first (refused above `max_pixels`), then
the decode reserves its peak bytes in `DecodeBudget` for as long as the request holds the image; a request
that does not fit waits up to `wait_s` for others to finish, then gets 503 with Retry-After. So images in
flight never take more than the budget together, whatever is uploaded at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, contextmanager
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, File, Request, UploadFile
from starlette.datastructures import FormData, UploadFile as StarletteUpload
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipeline.source.images import FORMAT_NAMES, ImageError, ImageInfo, decode_image, probe_image

from ..runtime.decode_budget import DecodeBudget
from ..runtime.errors import Unprocessable
from ..runtime.metrics import ServiceMetrics
from .errors import UnsupportedMediaType, send_refusal

# What the schema says of every image part: bytes (a file part), and never empty. That the bytes decode as an
# image no JSON schema can say; the 422 for bytes that do not is documented with each route.
IMAGE_PART_SCHEMA = {"format": "binary", "minLength": 1}


def ImageFile(description: str) -> Any:  # noqa: N802  (used as `File(...)` is)
    """`File(...)` for an image part, with `IMAGE_PART_SCHEMA` in the schema."""
    return File(description=description, json_schema_extra=IMAGE_PART_SCHEMA)


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
        await send_refusal(send, 413, f"request body too large: {size:,} bytes or more; the limit is {self.limit:,} bytes", [(b"connection", b"close")])


class BodyTimeout:
    """Answer 408 to a request whose body stalls: no bytes for `timeout_s` while more are due.

    uvicorn has no body timeout of its own, so an upload that sends its headers and part of its body and then
    stops would hold its connection (and the route's worker thread, once form parsing started) for ever. The
    clock runs between two reads of the body, as nginx's client_body_timeout does: a slow but moving upload on a
    poor link is not cut off. Once the body is complete, waiting for a disconnect is not timed. The app is told
    the client went away (it stops reading), and its answer is replaced by the 408 with `Connection: close`, so
    the server drops the connection.
    """

    def __init__(self, app: ASGIApp, timeout_s: float) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        complete = False
        stalled = False
        started = False

        async def timed_receive() -> Message:
            nonlocal complete, stalled
            if stalled:
                return {"type": "http.disconnect"}
            if complete:
                return await receive()
            try:
                async with asyncio.timeout(self.timeout_s):  # no task per read, as wait_for makes on 3.11
                    message = await receive()
            except TimeoutError:
                stalled = True
                return {"type": "http.disconnect"}  # the app stops reading here
            if message["type"] != "http.request" or not message.get("more_body", False):
                complete = True
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if stalled:
                if not started and message["type"] == "http.response.start":
                    started = True
                    await self._refuse(send)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, timed_receive, guarded_send)
        except Exception:
            if not stalled:
                raise
        if stalled and not started:
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        await send_refusal(send, 408, f"request body stalled: no bytes for {self.timeout_s:g} s; send the whole body without pausing", [(b"connection", b"close")])


def refuse_repeated_files(form: FormData) -> None:
    """Each upload route takes one file per field: a second `image` part would be dropped unseen (FastAPI keeps
    the first), so the request is refused instead."""
    for name in dict.fromkeys(form.keys()):
        files = [v for v in form.getlist(name) if isinstance(v, StarletteUpload)]
        if len(files) > 1:
            raise Unprocessable(f"{name}: one file per request, got {len(files)} '{name}' parts; send each image in a request of its own")


class ImageReader:
    """Uploaded file → decoded image, inside the memory budget. One per app (`app.state.images`); requests use it
    through `ImageHold`. Each decode's time goes to `metrics` (stage `decode`) when given."""

    def __init__(self, budget: DecodeBudget, max_pixels: int, metrics: ServiceMetrics | None = None) -> None:
        self.budget = budget
        self.max_pixels = max_pixels
        self.decode_time = metrics.stage["decode"] if metrics is not None else None

    def probe(self, upload: UploadFile, field: str = "image") -> ImageInfo:
        """The upload's header: format, mode and size; ImageError for a refused format or a size over `max_pixels`."""
        upload.file.seek(0)
        try:
            return probe_image(upload.file, upload.filename or field, self.max_pixels)
        finally:
            upload.file.seek(0)

    @contextmanager
    def read(self, upload: UploadFile, field: str = "image", info: ImageInfo | None = None) -> Iterator[tuple[bytes, np.ndarray]]:
        """The upload's bytes and its BGR image, reserved in the budget until the block ends. 415 for a declared
        non-image type; 422 (ImageError) for a refused format, a size over `max_pixels` (read from the header,
        nothing decoded) or bad bytes; 413 for an image larger than the whole budget; 503 + Retry-After when
        the budget stays taken. `info`: its header as `probe` read it already."""
        ctype = (upload.content_type or "").lower()
        if ctype and not ctype.startswith(IMAGE_TYPES):
            raise UnsupportedMediaType(f"{field}: expected an image ({FORMAT_NAMES}), got content type {upload.content_type}")
        name = upload.filename or field
        upload.file.seek(0, 2)
        size = upload.file.tell()
        upload.file.seek(0)
        info = (info or self.probe(upload, field)) if size else None
        with ExitStack() as held:
            held.enter_context(self.budget.reserve(size + (info.decode_bytes() if info else 0), name))
            upload.file.seek(0)
            data = upload.file.read()
            more = info.fallback_bytes() if info else 0  # a plain JPEG that libjpeg-turbo refuses goes to Pillow, which needs more
            start = time.perf_counter()
            image = decode_image(data, name, self.max_pixels, on_fallback=(lambda: held.enter_context(self.budget.reserve(more, name))) if more else None, info=info)
            if self.decode_time is not None:
                self.decode_time.observe(time.perf_counter() - start)
            yield data, image


class ImageHold:
    """The images one request decoded; their memory stays reserved until the request ends (the route, the
    detector and the engine hold the image that long). Reading also tells the micro-batcher that this
    request's image is on its way, so a batch may wait for it."""

    def __init__(self, reader: ImageReader, batcher) -> None:
        self.reader, self.batcher = reader, batcher
        self._stack = ExitStack()
        self._headers: dict[int, ImageInfo] = {}  # id(upload) -> its header, read once (`decodes_quickly`, `read`)

    def decodes_quickly(self, upload: UploadFile, max_bytes: int, max_pixels: int) -> bool:
        """An upload whose decoding takes a few milliseconds at most: at most `max_bytes` (so it is in memory, never
        spooled to disk) and a header declaring at most `max_pixels`. A file that is no image, or one the reader
        refuses, says False here; the reader then says why. The header read here is not read again by `read`."""
        if upload.size is None or upload.size > max_bytes:
            return False
        try:
            info = self.reader.probe(upload)
        except ImageError:
            return False
        self._headers[id(upload)] = info
        return info.pixels <= max_pixels

    def read(self, upload: UploadFile, field: str = "image", detect: bool = True) -> tuple[bytes, np.ndarray]:
        """`detect`: the image goes to the detector next (a rectification photo does not)."""
        if detect:
            self._stack.enter_context(self.batcher.incoming())
        try:
            return self._stack.enter_context(self.reader.read(upload, field, self._headers.pop(id(upload), None)))
        except BaseException:
            self._stack.close()  # a refused upload: the batcher must not wait for it
            raise

    def close(self) -> None:
        self._stack.close()


async def image_hold(request: Request) -> AsyncIterator[ImageHold]:
    """`async`, though the route that reads the images runs on a thread: opening and closing the hold does no
    I/O, so they need no thread hop of their own. A repeated file field is refused here (422)."""
    refuse_repeated_files(await request.form())  # parsed already (FastAPI reads the form before dependencies): no I/O
    hold = ImageHold(request.app.state.images, request.app.state.service.detector.batcher)
    try:
        yield hold
    finally:
        hold.close()


Images = Annotated[ImageHold, Depends(image_hold)]

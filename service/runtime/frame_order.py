"""Frames of one camera that are detected together enter the engine in time order.

Micro-batching answers a batch's requests at the same moment, so two frames of one camera sent back to back
would race for the engine lock, and the later one winning makes the earlier one a 409 "older than its last
frame". A frame registers before its detection; once detected it waits (briefly) while an earlier frame of
the same camera is still registered, then takes the engine lock and only then leaves, so the engine sees
the camera's frames in `taken_at` order.

>>> with order.detecting(camera_id, at) as slot:
...     detections = detect(image)
>>> with slot.turn(engine_lock):
...     engine.process(...)
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime


class FrameOrder:
    def __init__(self, max_wait_s: float = 5.0) -> None:
        self.max_wait_s = max_wait_s
        self._cond = threading.Condition()
        self._pending: dict[str, list[datetime]] = {}

    def register(self, camera_id: str, at: datetime) -> Slot:
        """The frame's place before its detection; `leave()` it if it never reaches `turn`."""
        slot = Slot(self, camera_id, at)
        with self._cond:
            self._pending.setdefault(camera_id, []).append(at)
        return slot

    @contextmanager
    def detecting(self, camera_id: str, at: datetime) -> Iterator[Slot]:
        slot = self.register(camera_id, at)
        try:
            yield slot
        except BaseException:
            slot.leave()  # detection failed: later frames need not wait for this one
            raise

    def _earlier_pending(self, camera_id: str, at: datetime) -> bool:
        return any(t < at for t in self._pending.get(camera_id, ()))


class Slot:
    def __init__(self, order: FrameOrder, camera_id: str, at: datetime) -> None:
        self.order, self.camera_id, self.at = order, camera_id, at
        self._left = False

    @contextmanager
    def turn(self, lock: threading.Lock) -> Iterator[None]:
        """Wait until no earlier frame of the camera is pending (at most `max_wait_s`), then hold `lock`."""
        order = self.order
        with order._cond:
            order._cond.wait_for(lambda: not order._earlier_pending(self.camera_id, self.at), timeout=order.max_wait_s)
        try:
            with lock:
                self.leave()
                yield
        finally:
            self.leave()

    def leave(self) -> None:
        order = self.order
        with order._cond:
            if self._left:
                return
            self._left = True
            pending = order._pending[self.camera_id]
            pending.remove(self.at)
            if not pending:
                del order._pending[self.camera_id]
            order._cond.notify_all()

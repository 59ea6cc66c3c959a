"""The image memory budget: images being decoded, and detector inputs waiting for a batch, reserve their peak
bytes here, so together they never take more than the budget, whatever is uploaded at once. A reservation that
does not fit waits up to `wait_s` for others to finish, then is refused with 503 and Retry-After (`Overloaded`);
one larger than the whole budget is 413 (`TooLarge`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import Overloaded, TooLarge
from .metrics import ServiceMetrics


class DecodeBudget:
    """A semaphore weighted in bytes: `reserve(n)` blocks until n bytes are free, at most `wait_s`."""

    def __init__(self, total_bytes: int, wait_s: float, retry_after_s: int, metrics: ServiceMetrics) -> None:
        self.total, self.wait_s, self.retry_after_s, self.metrics = total_bytes, wait_s, retry_after_s, metrics
        self.used = 0
        self._cond = threading.Condition()
        metrics.decode_budget.set(total_bytes)

    @contextmanager
    def reserve(self, nbytes: int, what: str) -> Iterator[None]:
        if nbytes > self.total:
            raise TooLarge(f"{what} needs about {nbytes / 2**20:,.0f} MiB to decode, more than the service's whole image memory budget ({self.total / 2**20:,.0f} MiB); send a smaller image")
        deadline = time.monotonic() + self.wait_s
        with self._cond:
            while self.used + nbytes > self.total:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.metrics.shed.labels("memory_budget").inc()
                    raise Overloaded(
                        f"{what}: the service's image memory budget is taken by other uploads ({self.used / 2**20:,.0f} of {self.total / 2**20:,.0f} MiB); retry in {self.retry_after_s} s",
                        self.retry_after_s,
                    )
                self._cond.wait(left)
            self.used += nbytes
        try:
            yield
        finally:
            with self._cond:
                self.used -= nbytes
                self._cond.notify_all()

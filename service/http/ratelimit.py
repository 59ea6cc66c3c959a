"""Failed-authentication limits: per client address and for the whole service, over a sliding window.

Keys are 256 random bits, so guessing one is hopeless anyway; the limits stop a client from hammering the
service with guesses (and the log with noise) and make a leaked-key scan visible. The key is checked first:
a right key always passes (cameras share NAT addresses, and one misconfigured camera must not stop the
others); past a limit a failing attempt gets 429 instead of 401 until its failures age out of the window.
The global limit counts and guards login-form failures only: fed by API keys, a few cameras on a revoked key
would lock every reviewer out of the login form.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

MAX_ADDRESSES = 10_000  # addresses tracked at once; the oldest are forgotten first (bounded memory)


@dataclass(frozen=True)
class Limited:
    """Over a limit: the caller should wait `retry_after` seconds."""

    retry_after: int
    scope: str  # "address" or "global"


class FailureLimiter:
    def __init__(self, per_address: int, global_limit: int, window_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_address = per_address
        self.global_limit = global_limit
        self.window_s = window_s
        self.clock = clock
        self._by_address: OrderedDict[str, deque[float]] = OrderedDict()
        self._all: deque[float] = deque()
        self._lock = threading.Lock()

    def _trim(self, q: deque[float], now: float) -> None:
        while q and q[0] <= now - self.window_s:
            q.popleft()

    def _wait(self, q: deque[float], limit: int, now: float) -> int | None:
        self._trim(q, now)
        if len(q) < limit:
            return None
        # the limit holds until enough failures have aged out: the (len - limit + 1)-th oldest one
        return max(1, math.ceil(q[len(q) - limit] + self.window_s - now))

    def check(self, address: str, *, login: bool = False) -> Limited | None:
        """Whether `address` may try to authenticate now (`login`: the review page's form, which the global
        limit also guards)."""
        now = self.clock()
        with self._lock:
            q = self._by_address.get(address)
            if q is not None and (wait := self._wait(q, self.per_address, now)) is not None:
                return Limited(wait, "address")
            if login and (wait := self._wait(self._all, self.global_limit, now)) is not None:
                return Limited(wait, "global")
        return None

    def fail(self, address: str, *, login: bool = False) -> None:
        """Count a failure of `address`; `login`: a failure of the login form, which also counts globally."""
        now = self.clock()
        with self._lock:
            q = self._by_address.pop(address, None) or deque()
            q.append(now)
            self._trim(q, now)
            while len(q) > self.per_address * 2:
                q.popleft()
            self._by_address[address] = q  # most recent last
            while len(self._by_address) > MAX_ADDRESSES:
                self._by_address.popitem(last=False)
            if login:
                self._all.append(now)
                self._trim(self._all, now)
                while len(self._all) > self.global_limit * 2:  # bounded: only the newest matter for the limit
                    self._all.popleft()

"""Admission control for inference: a camera burst is answered 503 at once instead of queueing past any use.

An inference request (`/detect`, `/frames`, `/photos`) is admitted only while the detector can still answer it
within the latency budget (`latency_budget_s`, default 2 s). The estimate is the work already admitted times the
measured cost of one request: the detector's time per image (each micro-batch's time over its images, smoothed)
plus the request's own CPU outside the detector (decode, prepare, boxes, engine; smoothed), shared by the cores,
times a correction learnt from how long served requests really took against their estimate (the neighbours'
load on the cores, and the refused uploads the server still reads, are in no other measurement).
A request past the budget gets 503 with a `Retry-After` of the time the excess needs to drain, before its image
is decoded: nothing of it was taken, so a camera resends the same frame later and nothing is lost.

Admitted requests do their CPU work on the inference pool (`run`, `inference_threads` threads) and wait for the
detector on the event loop, so neither waiting nor a burst takes a thread from the pool the reviewer and admin
routes run on, and `/health` (async) never waits behind inference.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import TypeVar

import anyio

from .errors import Overloaded
from .metrics import ServiceMetrics

T = TypeVar("T")

SMOOTHING = 0.2  # weight of the newest measurement in the running averages
# The share of the budget the estimate may fill: the estimate is a mean, and the tail of the requests admitted
# at the edge runs past it by the machine's noise (measured in docs/benchmarks.md#bursts).
HEADROOM = 0.8
MIN_CORRECTION, MAX_CORRECTION = 0.5, 4.0  # bounds of the learnt correction (served time over estimate)


class Admitted:
    """One admitted inference request: `run` its blocking parts on the inference pool (their thread CPU time is
    measured); leaving the `admit` block releases its place."""

    def __init__(self, admission: Admission, estimate_s: float | None) -> None:
        self.admission = admission
        self.estimate_s = estimate_s  # what the model expected (uncorrected); compared with what it took once served
        self.started = time.perf_counter()
        self.cpu_s = 0.0
        self.served = False

    @property
    def alone(self) -> bool:
        """No other inference request is in flight: a short part run on the event loop delays none."""
        return self.admission.in_flight <= 1

    async def run(self, fn: Callable[..., T], *args, here: bool = False) -> T:
        """`fn(*args)` on the inference pool; `here`: on the event loop instead, for a part of a few milliseconds
        where the hop to a thread and back would cost a fifth of it or more (see `alone`)."""
        if here:
            return self._timed(fn, *args)
        return await anyio.to_thread.run_sync(partial(self._timed, fn, *args), limiter=self.admission.limiter)

    async def answer(self, fn: Callable[..., T], *args, here: bool = False) -> T:
        """The last blocking part, after the detector: as `run`, and the request counts as served."""
        out = await self.run(fn, *args, here=here)
        self.served = True
        return out

    def _timed(self, fn: Callable[..., T], *args) -> T:
        start = time.thread_time()
        try:
            return fn(*args)
        finally:
            self.cpu_s += time.thread_time() - start


class Admission:
    """Counts the inference requests in flight and admits a new one only if the estimate fits the budget.

    Before the detector was ever timed (a fresh start), at most `cold_limit` requests are in flight."""

    def __init__(
        self, budget_s: float, threads: int, metrics: ServiceMetrics, *, retry_after_s: int = 1, cold_limit: int = 8, cores: int | None = None,
        detector_streams: int = 1,
    ) -> None:
        self.budget_s, self.retry_after_s, self.cold_limit, self.metrics = budget_s, retry_after_s, cold_limit, metrics
        self.detector_streams = max(1, detector_streams)  # micro-batches run at once: the detector's time per image is shared
        self.cores = cores or os.cpu_count() or 1
        self.limiter = anyio.CapacityLimiter(threads)
        self.in_flight = 0
        self.detector_s: float | None = None  # per image
        self.outside_s = 0.0  # CPU seconds per request outside the detector
        self.correction = 1.0  # served requests' real time over their estimate, smoothed
        self._lock = threading.Lock()

    # ---- measurements ----

    def observe_detector(self, seconds: float, images: int) -> None:
        """One detector call (a micro-batch) took `seconds` for `images` images (with several streams, the
        calls overlap: each image costs the detector its share)."""
        per = seconds / max(images, 1) / self.detector_streams
        with self._lock:
            self.detector_s = per if self.detector_s is None else self.detector_s + SMOOTHING * (per - self.detector_s)

    def observe_request(self, cpu_s: float) -> None:
        with self._lock:
            self.outside_s += SMOOTHING * (cpu_s - self.outside_s)

    def observe_served(self, took_s: float, estimate_s: float) -> None:
        """A served request took `took_s` where `estimate_s` was expected: the correction learns the share of the
        machine the model does not see (neighbours on the cores, refused uploads still read by the server)."""
        with self._lock:
            ratio = min(MAX_CORRECTION, max(MIN_CORRECTION, took_s / max(estimate_s, 1e-6)))
            self.correction += SMOOTHING * (ratio - self.correction)

    def per_request_s(self) -> float | None:
        """Seconds of the detector's and the cores' time one more request costs, corrected by what served
        requests really took; None before any was timed."""
        if self.detector_s is None:
            return None
        return (self.detector_s + self.outside_s / self.cores) * self.correction

    def estimate_s(self) -> float | None:
        """How long a request admitted now would take to be answered: what is in flight, then itself."""
        per = self.per_request_s()
        return None if per is None else (self.in_flight + 1) * per

    # ---- admission ----

    @contextmanager
    def admit(self) -> Iterator[Admitted]:
        """Admit one request or raise `Overloaded` (503 with Retry-After) at once."""
        with self._lock:
            per = self.per_request_s()
            estimate = None
            if per is None:
                if self.in_flight >= self.cold_limit:
                    self._shed(f"the detector is starting up and already has {self.in_flight} requests", self.retry_after_s)
            else:
                estimate = (self.in_flight + 1) * per
                if estimate > self.budget_s * HEADROOM:
                    drain = estimate - self.budget_s * HEADROOM
                    self._shed(
                        f"the detector cannot answer within the {self.budget_s:g} s latency budget ({self.in_flight} requests in flight, about "
                        f"{per * 1000:.0f} ms each)", max(self.retry_after_s, math.ceil(drain)),
                    )
            self.in_flight += 1
            raw = None if estimate is None else estimate / self.correction  # the model's own figure, to learn the correction from
        admitted = Admitted(self, raw)
        try:
            yield admitted
        finally:
            with self._lock:
                self.in_flight -= 1
            if admitted.served:
                self.observe_request(admitted.cpu_s)
                if admitted.estimate_s is not None:
                    self.observe_served(time.perf_counter() - admitted.started, admitted.estimate_s)

    def _shed(self, why: str, retry_after: int) -> None:
        self.metrics.shed.labels("latency_budget").inc()
        raise Overloaded(f"{why}; retry in {retry_after} s (a camera resends the frame: nothing of it was taken)", retry_after)

    def watch(self) -> None:
        """The in-flight count and the estimate as gauges."""
        self.metrics.inference_in_flight.set_function(lambda: self.in_flight)
        self.metrics.estimated_wait.set_function(lambda: self.estimate_s() or 0.0)


def run_on(limiter: anyio.CapacityLimiter, fn: Callable[..., T], *args) -> object:
    """`fn(*args)` on a thread of `limiter`'s pool (for routes that are not inference, e.g. /ready's probes)."""
    return anyio.to_thread.run_sync(partial(fn, *args), limiter=limiter)

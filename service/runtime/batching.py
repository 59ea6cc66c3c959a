"""Micro-batching: concurrent requests' images go through the detector together.

A detector runs a batch of 8 images in much less than 8 times one image, but requests arrive one image at a
time. Each request hands its image to `MicroBatcher.submit` and waits for its `Pending` (the service's routes
on the event loop, holding no thread; `detect` waits on the caller's thread); one worker thread
takes what is queued for the same detector object (one model, one camera plan: `plan.camera_detector`
returns a shared object for cameras that detect alike), up to `max_size`, and runs it as one call.

An exported model's input is prepared (letterboxed, converted to float) on the request's own thread before
it is queued (`ExportedDetector.prepare`), and its raw output is decoded into boxes there too (`finish`): the
worker thread only runs the model, so at load the requests' Python overlaps the model instead of delaying the
next batch. The prepared tensors' memory is reserved in the image memory budget while they wait.

The worker waits for a batch to fill only while more requests are on their way (`incoming`: a request is
decoding its upload), and never longer than `max_wait` after the oldest image was queued, so one lone request
pays no wait at all. A lone image on an idle service also gets a spare thread: a detector with independent
inputs (the street model's and its cue model's, `CueCascade.uses_spare`) prepares them side by side, on a core
that nothing uses then. The queue is bounded: when `queue_size` images already wait, the request is refused at
once with 503 and Retry-After (`Overloaded`) instead of piling up threads and memory.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import supervision as sv

from pipeline.detect import Detector
from pipeline.detect.streams import available_cores

from .errors import Overloaded, Unavailable
from .metrics import ServiceMetrics

log = logging.getLogger(__name__)


class Budget(Protocol):
    """Memory that waiting inputs reserve (`decode_budget.DecodeBudget`)."""

    def reserve(self, nbytes: int, what: str) -> AbstractContextManager[None]: ...


class Observer(Protocol):
    """A histogram's child (`ServiceMetrics.stage[...]`): takes seconds."""

    def observe(self, amount: float) -> None: ...


SPARE_CORES = available_cores()  # a spare thread needs a core the model is not using

_TICKET: ContextVar[_Ticket | None] = ContextVar("batch_ticket", default=None)


class _Ticket:
    """One request announced as incoming; `close` (idempotent) says it arrived or gave up."""

    def __init__(self, batcher: MicroBatcher) -> None:
        self.batcher = batcher
        self.open = True
        with batcher._cond:
            batcher._incoming += 1

    def close(self, locked: bool = False) -> None:
        if locked:  # the caller holds batcher._cond
            self._close()
            return
        with self.batcher._cond:
            self._close()
            self.batcher._cond.notify_all()

    def _close(self) -> None:
        if self.open:
            self.open = False
            self.batcher._incoming -= 1


@dataclass
class _Item:
    detector: Detector
    model: str
    image: np.ndarray
    prepared: object | None = None  # the detector's own input: then the future holds its raw output, to `finish`
    queued: float = field(default_factory=time.perf_counter)
    future: Future = field(default_factory=Future)


class Pending:
    """An image queued for the detector. The worker's raw output becomes boxes on the requester's side
    (`finish`); the prepared input's memory stays reserved until then. Wait with `result()` on a thread, or
    `await wait()` then `finish(raw)` (the async routes: no thread is held while the detector is busy)."""

    def __init__(
        self, detector: Detector, prepared: object | None, future: Future, reservation: AbstractContextManager[None], boxes_time: Observer | None = None,
    ) -> None:
        self.detector, self.prepared, self.future = detector, prepared, future
        self._reservation = reservation
        self._boxes_time = boxes_time  # where `finish` reports the time it took to make the boxes
        self._open = True
        self._closing = threading.Lock()  # close() may come from the worker (a cancelled wait) and the route at once

    def result(self) -> sv.Detections:
        try:
            out = self.future.result()
        except BaseException:
            self.close()
            raise
        return self.finish(out)

    async def wait(self) -> object:
        """The raw output, awaited on the event loop. A cancelled wait leaves the queued image alone (the worker
        still answers its future); its memory is freed once the worker is done with it."""
        try:
            return await asyncio.shield(asyncio.wrap_future(self.future))
        except BaseException:
            self.future.add_done_callback(lambda _: self.close())  # at once if the detector failed
            raise

    def finish(self, out: object) -> sv.Detections:
        """Boxes from the raw output (CPU work: on a thread); the boxes themselves where the worker made them."""
        try:
            if self.prepared is None or self.finished(out):
                return out
            return _timed_boxes(self.detector, out, self.prepared, self._boxes_time)
        finally:
            self.close()

    @staticmethod
    def finished(out: object) -> bool:
        """The worker already made boxes of this output (`MicroBatcher._run`: a lone image): `finish` is free, and
        a route on the event loop needs no thread hop for it."""
        return isinstance(out, sv.Detections)

    def close(self) -> None:
        with self._closing:
            if not self._open:
                return
            self._open = False
        self._reservation.__exit__(None, None, None)


class MicroBatcher:
    """`detect(detector, image)` from any thread; the detector runs on `streams` worker threads (one by
    default), each taking the next batch when it is free, in batches.

    With `enabled=False` each caller runs the detector itself, one image per call (the service before
    micro-batching; `streetorder bench serve --no-batching` measures it).
    """

    def __init__(
        self, metrics: ServiceMetrics, *, max_size: int = 8, max_wait_s: float = 0.004, queue_size: int = 64, retry_after_s: int = 1, enabled: bool = True,
        budget: Budget | None = None, observer: Callable[[float, int], None] | None = None, streams: int = 1,
    ) -> None:
        if streams < 1:
            raise ValueError(f"streams must be at least 1, got {streams}")
        self.metrics = metrics
        self.budget = budget
        self.max_size, self.max_wait_s, self.queue_size, self.retry_after_s = max_size, max_wait_s, queue_size, retry_after_s
        self.enabled = enabled
        self.observer = observer  # told each detector call's (seconds, images): admission's service time
        self.streams = streams  # worker threads, each running a batch at once (`detect.streams`)
        self._queue: deque[_Item] = deque()
        self._cond = threading.Condition()
        self._incoming = 0  # requests that will call detect soon (decoding their upload)
        self._running = 0  # batches in the detector now
        self._closed = False
        self._workers: list[threading.Thread] = []
        self._spare: ThreadPoolExecutor | None = None  # made on first use (`_spare_for`)
        self._spare_lock = threading.Lock()

    # ---- callers ----------------------------------------------------------------------------------------

    @contextmanager
    def incoming(self) -> Iterator[None]:
        """Around a request whose image will come to `detect` (its upload is decoding meanwhile): the worker
        may wait for it. Ends at the request's `detect` call or at the block's end, whichever comes first."""
        ticket = _Ticket(self)
        token = _TICKET.set(ticket)
        try:
            yield
        finally:
            ticket.close()
            try:
                _TICKET.reset(token)
            except ValueError:  # left in another context (a dependency's teardown thread): nothing to reset
                pass

    def detect(self, detector: Detector, image: np.ndarray, model: str = "") -> sv.Detections:
        """Detect on the caller's thread, waiting there (the night job's way; the service's routes `submit`)."""
        return self.submit(detector, image, model).result()

    def submit(self, detector: Detector, image: np.ndarray, model: str = "") -> Pending:
        """Prepare the image on the caller's thread and queue it for the worker; the answer comes through the
        returned `Pending` (`result()` blocks, `await wait()` does not hold a thread). With batching off the
        detector runs here and now. Raises `Overloaded` when the queue is full."""
        ticket = _TICKET.get()
        if not self.enabled:
            if ticket:
                ticket.close()
            start = time.perf_counter()
            [found] = detector.detect([image])
            self._observe(model, 1, time.perf_counter() - start)
            done: Future = Future()
            done.set_result(found)
            return Pending(detector, None, done, nullcontext())
        try:
            start = time.perf_counter()
            if not getattr(detector, "preparable", False):
                prepared = None
            elif spare := self._spare_for(detector, incoming=1 if ticket else 0):
                prepared = detector.prepare(image, spare=spare)
            else:
                prepared = detector.prepare(image)
            if prepared is not None:
                self.metrics.stage["prepare"].observe(time.perf_counter() - start)
        except BaseException:
            if ticket:
                ticket.close()
            raise
        reservation = self._reserved(prepared)
        reservation.__enter__()
        try:
            item = _Item(detector, model, image, prepared)
            with self._cond:
                if ticket:
                    ticket.close(locked=True)  # here now, or refused: either way no batch waits for it
                self._cond.notify_all()
                if self._closed:
                    raise Unavailable("the service is shutting down")
                if len(self._queue) >= self.queue_size:
                    self.metrics.shed.labels("detector_queue_full").inc()
                    raise Overloaded(f"the detector queue is full ({self.queue_size} images waiting); retry in {self.retry_after_s} s", self.retry_after_s)
                self._queue.append(item)
                self._start()
        except BaseException:
            reservation.__exit__(None, None, None)
            raise
        return Pending(detector, prepared, item.future, reservation, self.metrics.stage["boxes"])

    def _reserved(self, prepared):
        """The prepared input's memory, reserved in the image budget until the detector is done with it."""
        if prepared is None or self.budget is None:
            return nullcontext()
        return self.budget.reserve(prepared.nbytes, "the detector input")

    def depth(self) -> int:
        return len(self._queue)

    def _spare_for(self, detector: Detector, incoming: int = 0) -> ThreadPoolExecutor | None:
        """A spare thread for a detector with independent inputs (`uses_spare`), while nothing else is queued,
        in the model or on its way (`incoming`: the caller's own announcement): then the cores are idle but for
        this image. Under load the cores are busy with other requests, and a request prepares its image alone."""
        if not getattr(detector, "uses_spare", False) or self._queue or self._running or self._incoming > incoming or SPARE_CORES < 2:
            return None
        with self._spare_lock:
            if self._spare is None and not self._closed:
                self._spare = ThreadPoolExecutor(1, thread_name_prefix="detector-spare")
            return self._spare

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for worker in self._workers:
            worker.join(timeout=10)
        with self._spare_lock:
            if self._spare is not None:
                self._spare.shutdown(wait=True)

    def _observe(self, model: str, n: int, seconds: float) -> None:
        self.metrics.inference.labels(model).observe(seconds)
        self.metrics.batch_size.labels(model).observe(n)
        if self.observer is not None:
            self.observer(seconds, n)

    # ---- the worker -------------------------------------------------------------------------------------

    def _start(self) -> None:
        if not self._workers:
            self._workers = [threading.Thread(target=self._run, name=f"detector-batcher-{k}", daemon=True) for k in range(self.streams)]
            for worker in self._workers:
                worker.start()

    def _same(self, detector: Detector) -> int:
        return sum(1 for it in self._queue if it.detector is detector)

    def _take(self) -> list[_Item] | None:
        """The next batch: the oldest image and those queued for the same detector, once full or due. With
        several workers, one that finds its oldest image taken by another while it waited starts over."""
        with self._cond:
            while True:
                while not self._queue:
                    if self._closed:
                        return None
                    self._cond.wait()
                first = self._queue[0]
                due = first.queued + self.max_wait_s
                while not self._closed and self._incoming > 0 and self._same(first.detector) < self.max_size:
                    left = due - time.perf_counter()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                if self._queue and self._queue[0] is first:
                    break
            batch, rest = [], deque()
            while self._queue:
                it = self._queue.popleft()
                (batch if it.detector is first.detector and len(batch) < self.max_size else rest).append(it)
            self._queue = rest
            self._running += 1  # until `_run` is done with it
            return batch

    @staticmethod
    def _run_detector(batch: list[_Item]) -> list:
        """Raw model outputs for prepared items (each request finishes its own), detections for the others. A
        batch holds one detector's items, so either all of them were prepared or none."""
        detector = batch[0].detector
        if batch[0].prepared is not None:
            return detector.infer_prepared([it.prepared for it in batch])
        return detector.detect([it.image for it in batch])

    def _finished(self, it: _Item, raw: list) -> list:
        """A lone image with nothing queued or on its way behind it: its boxes are made here, while the model has
        nothing else to do, saving the request a hop to a thread and back after the detector (half a millisecond
        at c=1, `docs/benchmarks.md`). Under load the requests finish their own: the model never waits for boxes."""
        try:
            return [_timed_boxes(it.detector, raw[0], it.prepared, self.metrics.stage["boxes"])]
        except Exception:  # the request's own `finish` raises it again where the route expects it
            return raw

    def _run_batch(self, batch: list[_Item]) -> None:
        now = time.perf_counter()
        for it in batch:
            self.metrics.queue_wait.observe(now - it.queued)
        try:
            found = self._run_detector(batch)
            if len(found) != len(batch):  # a broken runtime: without this, the images it left out would wait for ever
                raise RuntimeError(f"the detector returned {len(found)} outputs for {len(batch)} image(s)")
            self._observe(batch[0].model, len(batch), time.perf_counter() - now)
        except Exception as e:
            if len(batch) == 1:  # the request answers 500 as it did before batching
                _answer(batch[0].future, exc=e)
                return
            log.warning("detector failed on a batch of %d; running its images one by one", len(batch), exc_info=True)
            for it in batch:  # so only the image that fails it fails, not its batch-mates
                self._one(it)
            return
        if len(batch) == 1 and batch[0].prepared is not None and not self._queue and not self._incoming:
            found = self._finished(batch[0], found)
        for it, d in zip(batch, found):
            _answer(it.future, d)

    def _one(self, it: _Item) -> None:
        start = time.perf_counter()
        try:
            [found] = self._run_detector([it])
        except Exception as e:
            _answer(it.future, exc=e)
            return
        self._observe(it.model, 1, time.perf_counter() - start)
        _answer(it.future, found)

    def _run(self) -> None:
        while (batch := self._take()) is not None:
            try:
                self._run_batch(batch)
            except Exception as e:  # a fault outside the detector call: this batch's requests get it, the worker lives on
                log.exception("detector worker: a batch of %d failed outside the detector", len(batch))
                for it in batch:
                    if not it.future.done():
                        _answer(it.future, exc=e)
            finally:
                with self._cond:
                    self._running -= 1
        # closed: anything left is answered rather than left hanging (taken under the lock: each worker does this)
        with self._cond:
            left, self._queue = list(self._queue), deque()
        for it in left:
            _answer(it.future, exc=Unavailable("the service is shutting down"))


def _timed_boxes(detector: Detector, raw: object, prepared: object, observer: Observer | None) -> sv.Detections:
    """`detector.finish`, its time told to `observer` (stage `boxes`)."""
    start = time.perf_counter()
    found = detector.finish(raw, prepared)
    if observer is not None:
        observer.observe(time.perf_counter() - start)
    return found


def _answer(future: Future, result: object = None, exc: BaseException | None = None) -> None:
    """Set a queued image's answer unless its waiter gave up (a cancelled future takes none)."""
    if not future.set_running_or_notify_cancel():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)

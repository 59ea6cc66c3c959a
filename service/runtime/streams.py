"""The cameras' streams in the single-process service: one worker (two threads, below) per camera whose config names a
`stream:`, each driving a `StreamReader` whose samples go through the same intake as POST /frames
(`LiveIntake.process_frame`: the detector's micro-batcher, the camera's frame order, the engine, the ledger or
the journal).

Two threads per camera: the reader (connecting, reading packets, decoding) and the camera's intake (waiting for
its detection, the engine). They meet in a one-picture hand-off, so the reader keeps reading while the detector
is busy: a busy service processes the camera's newest picture, never one that waited in a socket buffer (a
picture is stamped when it is decoded, so a stale one would carry a wrong time), and the picture it could not
take is counted as `superseded`. Frames of one camera are processed in order by its own intake thread, and a
camera that hangs or drops holds only its own threads. Their detections meet in the micro-batcher, so many
cameras still share detector calls.

A sample the service refuses is that sample lost and the stream goes on: the detector's queue full (503) sheds
it, a frame-order clash (409: the same camera also POSTed a newer frame) skips it. With the ledger down the
intake journals it (202) as it does for a POST.

Outages: a stream down longer than its `offline_after_s` is written to the ledger's `camera_outages` once
(`pipeline.live.outages` says why a table and not a case), and closed by its next picture. The supervisor thread
writes them (a slow database holds no reader); with the ledger down they wait, in order, and are retried every
`supervise_every_s`. It also follows the config: a camera's stream added, changed or removed starts, restarts or
stops its worker without a restart of the service.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from pipeline.config import StreamConfig
from pipeline.live.outages import CameraOutages
from pipeline.source.streams import StreamReader, StreamState, StreamStatus

from .cameras import Cameras
from .errors import Accepted, Overloaded, ServiceError, Unavailable
from .ledger import LedgerLink
from .live import LiveIntake

log = logging.getLogger(__name__)

class _Handoff:
    """One camera's newest picture on its way from the reader to the intake; a newer one replaces it."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: tuple[datetime, np.ndarray] | None = None

    def put(self, at: datetime, image: np.ndarray) -> bool:
        """True when it replaced a picture the intake had not taken yet."""
        with self._cond:
            replaced = self._item is not None
            self._item = (at, image)
            self._cond.notify()
            return replaced

    def take(self, stop: threading.Event, poll_s: float = 0.5) -> tuple[datetime, np.ndarray] | None:
        with self._cond:
            while self._item is None:
                if stop.is_set():
                    return None
                self._cond.wait(poll_s)
            item, self._item = self._item, None
            return item


@dataclass
class _Worker:
    camera_id: str
    config: StreamConfig
    reader: StreamReader
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    intake: threading.Thread | None = None
    handoff: _Handoff = field(default_factory=_Handoff)
    outcomes: Counter = field(default_factory=Counter)


class StreamWorkers:
    """Every streamed camera's worker; `statuses()` and `outcomes()` are what /ready and /metrics read."""

    def __init__(
        self, cameras: Cameras, live: LiveIntake, outages: CameraOutages, link: LedgerLink | None = None, *,
        supervise_every_s: float = 2.0, max_pixels: int | None = None,
    ) -> None:
        self.cameras = cameras
        self.live = live
        self.outages = outages
        self.link = link
        self.supervise_every_s = supervise_every_s
        self.max_pixels = max_pixels
        self._workers: dict[str, _Worker] = {}
        self._lock = threading.Lock()
        self._pending: list[Callable[[], object]] = []  # outage writes the ledger could not take yet, in order
        self._pending_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()  # an outage write is waiting: the supervisor writes it now
        self._supervisor: threading.Thread | None = None

    # ---- life ---------------------------------------------------------------------------------------

    def start(self) -> None:
        self.sync()
        self._supervisor = threading.Thread(target=self._supervise, name="stream-supervisor", daemon=True)
        self._supervisor.start()

    def stop(self) -> None:
        """Stop every worker; a reader blocked on the network notices within its `timeout_s`."""
        self._stop.set()
        self._wake.set()
        with self._lock:
            workers = list(self._workers.values())
            self._workers.clear()
        for w in workers:
            w.stop.set()
        for w in workers:
            for thread in (w.thread, w.intake):
                if thread is not None:
                    thread.join(timeout=w.config.timeout_s + 5)
        if self._supervisor is not None:
            self._supervisor.join(timeout=10)
        self._flush_pending()

    def sync(self) -> None:
        """Start, restart or stop workers so that they match the current config."""
        try:
            wanted = {c.id: c.stream for c in self.cameras.config().cameras if c.stream is not None}
        except Exception:  # a config that fails to reload: the last good one keeps serving (ConfigSource)
            log.exception("streams: cannot read the camera config")
            return
        with self._lock:
            for camera_id in [c for c, w in self._workers.items() if wanted.get(c) != w.config]:
                w = self._workers.pop(camera_id)
                w.stop.set()  # its thread ends on its own; a replacement starts now
                log.info("camera %s: stream %s", camera_id, "changed, restarting its reader" if camera_id in wanted else "removed from the config")
            for camera_id, config in wanted.items():
                if camera_id not in self._workers and not self._stop.is_set():
                    self._workers[camera_id] = self._start(camera_id, config)

    def _start(self, camera_id: str, config: StreamConfig) -> _Worker:
        reader = StreamReader(camera_id, config, **({"max_pixels": self.max_pixels} if self.max_pixels else {}))
        worker = _Worker(camera_id, config, reader)
        sink = _Sink(self, worker)
        worker.thread = threading.Thread(target=reader.run, args=(sink, worker.stop), name=f"stream-{camera_id}", daemon=True)
        worker.intake = threading.Thread(target=sink.intake_loop, name=f"stream-intake-{camera_id}", daemon=True)
        worker.intake.start()
        worker.thread.start()
        return worker

    def _supervise(self) -> None:
        synced = time.monotonic()
        while not self._stop.is_set():
            self._wake.wait(max(synced + self.supervise_every_s - time.monotonic(), 0.0))
            self._wake.clear()
            if self._stop.is_set():
                return
            if time.monotonic() >= synced + self.supervise_every_s:
                self.sync()
                synced = time.monotonic()
            self._flush_pending()

    # ---- what /ready and /metrics read --------------------------------------------------------------

    def statuses(self) -> list[StreamStatus]:
        with self._lock:
            workers = sorted(self._workers.values(), key=lambda w: w.camera_id)
        return [w.reader.status for w in workers]

    def outcomes(self) -> dict[str, Counter]:
        with self._lock:
            return {w.camera_id: Counter(w.outcomes) for w in self._workers.values()}

    # ---- outages ------------------------------------------------------------------------------------

    def _outage_write(self, write: Callable[[], object]) -> None:
        """Queue the write for the supervisor thread (so a slow database never holds a reader), which writes it
        at once, after the ones already waiting, or retries them in order until the ledger takes them."""
        with self._pending_lock:
            self._pending.append(write)
        self._wake.set()

    def _flush_pending(self) -> None:
        if self.link is not None and not self.link.up:
            return
        with self._pending_lock:
            while self._pending:
                try:
                    self._pending[0]()
                except Exception as e:
                    log.warning("camera outage: the ledger did not take it (%s: %s); retried every %g s", type(e).__name__, e, self.supervise_every_s)
                    return
                self._pending.pop(0)


class _Sink:
    """One camera's samples into the live intake, its state changes into the ledger's outages."""

    def __init__(self, workers: StreamWorkers, worker: _Worker) -> None:
        self.workers, self.worker = workers, worker

    def sample(self, camera_id: str, at: datetime, image: np.ndarray) -> None:
        """On the reader's thread: hand the picture over and read on."""
        if self.worker.handoff.put(at, image):
            self.worker.outcomes["superseded"] += 1

    def intake_loop(self) -> None:
        """On the camera's intake thread: its pictures through the intake, in order, until the worker stops."""
        while (item := self.worker.handoff.take(self.worker.stop)) is not None:
            self.process(self.worker.camera_id, *item)

    def process(self, camera_id: str, at: datetime, image: np.ndarray) -> None:
        outcome = "processed"
        try:
            self.workers.live.process_frame(camera_id, at, image)
        except Accepted:
            outcome = "journaled"  # the ledger is down: the reports are safe in the journal
        except (Overloaded, Unavailable) as e:
            outcome = "shed"  # detector queue full, no model: this sample is lost, the next one comes
            log.debug("camera %s: sample shed: %s", camera_id, e)
        except ServiceError as e:  # 404 (camera gone), 409 (frame order), 422 (clock): this sample only
            outcome = "refused"
            log.warning("camera %s: sample at %s refused (%d): %s", camera_id, at.isoformat(), e.status, e.detail)
        except Exception:
            outcome = "failed"
            log.exception("camera %s: sample at %s failed in the intake", camera_id, at.isoformat())
        finally:
            self.worker.outcomes[outcome] += 1

    def state_changed(self, status: StreamStatus, previous: StreamState) -> None:
        if self.worker.stop.is_set():
            return
        camera_id = status.camera_id
        if status.state == StreamState.OFFLINE:
            try:
                camera = self.workers.cameras.camera(camera_id)
            except ServiceError:
                return  # removed from the config meanwhile
            outages, down_since, error, kind = self.workers.outages, status.down_since or status.since, status.last_error, status.kind
            reported = datetime.now(UTC)

            def write_open() -> None:
                if outages.open(camera_id, camera.location, camera.owner, kind, down_since, reported, error):
                    log.warning("camera %s is offline since %s: outage written to the ledger (%s)", camera_id, down_since.isoformat(timespec="seconds"), error)

            self.workers._outage_write(write_open)
        elif status.state == StreamState.UP:
            # any open outage of this camera, also one from before a restart, ends with this picture
            outages, ended = self.workers.outages, status.last_sample_at or status.since

            def write_close() -> None:
                if outages.close(camera_id, ended):
                    log.info("camera %s is back: outage closed at %s", camera_id, ended.isoformat(timespec="seconds"))

            self.workers._outage_write(write_close)

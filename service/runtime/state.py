"""What the running service holds, composed from its parts, one job each: the camera config (`cameras.py`), the
ledger (`CaseStore`; its health in `ledger.py`), the detector (`detector.py`: the model slot and the
micro-batcher), the live intake (`live.py`: the engine, frame order and the journaled report queue), and the
cameras' streams (`streams.py`: a reader and an intake thread per streamed camera, feeding the live intake).

Locking: the engine (trackers, incidents, the per-camera frame order) is not thread-safe, so everything that
touches it runs under `engine_lock`, one frame or photo at a time. Detection, the slow part, runs before the
lock is taken, on the detector reference read once at the start of the request, through the micro-batcher
(`batching.py`: concurrent requests that share a detector object, so one model, run as one batch), so a model
swap never waits for a frame (nor a frame for a swap). The
ledger is safe to call from any thread (one transaction per call), so case routes never take the lock.
Run one process (one uvicorn worker): the engine's state lives in memory.

Durability: what the ledger cannot take yet waits in the live intake's journaled queue (`live.py`). The service
starts even while PostgreSQL is unreachable (`ledger.LedgerLink`): degraded until the database answers.
"""

from __future__ import annotations

import threading

from pipeline.cases import CaseStore
from pipeline.config import ConfigSource, StreetOrderConfig
from pipeline.detect.warm_up import warm_up
from pipeline.live.outages import CameraOutages
from pipeline.review.decisions import Rejection, reject

from ..settings import ServiceSettings
from .cameras import Cameras
from .detector import DetectorRuntime, camera_warm_up
from .ledger import LedgerLink
from .live import LiveIntake
from .metrics import ServiceMetrics
from .streams import StreamWorkers


class ServiceState:
    """Built once per app by `open`; routers reach it through `deps.get_state`, and its parts by name:
    `cameras`, `store`, `link`, `detector`, `live`, `streams`, `metrics`."""

    def __init__(
        self, settings: ServiceSettings, source: ConfigSource, store: CaseStore, detector: DetectorRuntime, metrics: ServiceMetrics, link: LedgerLink | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.link = link or LedgerLink(settings.ledger_settings(), settings.retry_interval_s)
        if link is None:
            self.link.up = True  # the caller opened the store: it answered
        self.detector = detector
        self.metrics = metrics
        self.engine_lock = threading.Lock()
        self.cameras = Cameras(source, self.engine_lock)
        self.live = self._open_live()
        metrics.watch(queue_depth=detector.batcher.depth, decode_bytes=lambda: detector.budget.used, backlog=lambda: self.live.backlog, model=detector.model_info)
        self.streams = self._open_streams()
        metrics.watch_streams(self.streams.statuses, self.streams.outcomes)

    def _open_live(self) -> LiveIntake:
        """The intake: the engine in this process (a cluster's state puts each camera's engine in its own actor)."""
        return LiveIntake(self.settings, self.cameras, self.store, self.detector, self.metrics, self.engine_lock, self.link)

    def _open_streams(self) -> StreamWorkers:
        """The cameras' streams: read on threads of this process (on a cluster, each camera's owner actor reads its own)."""
        return StreamWorkers(self.cameras, self.live, CameraOutages(self.store.db), self.link, max_pixels=self.settings.max_pixels)

    @classmethod
    def open(cls, settings: ServiceSettings) -> ServiceState:
        """Fails fast on a bad camera config or a ledger that refuses us (a wrong password, a missing database); a
        PostgreSQL that does not answer starts the service degraded (`LedgerLink`), and a model that does not load
        is reported by /ready, so the ledger and the review page keep working while a model is fixed or swapped in."""
        source = ConfigSource(settings.camera_config)
        link = LedgerLink(settings.ledger_settings(), settings.retry_interval_s)
        store = link.open_store()
        metrics = ServiceMetrics()
        detector = DetectorRuntime.open(settings, metrics, warm=camera_warm_up(settings, source))
        state = cls(settings, source, store, detector, metrics, link)
        if settings.warm_up_s:
            state.cameras.on_change = state.warm_up_cameras
        return state

    def warm_up_cameras(self, config: StreetOrderConfig) -> None:
        """A config reloaded while serving may add cameras or resolutions: their input shapes are built on a thread
        of their own (`warm_up`; shapes built already are skipped), not on the detector's when their first frame
        comes. A camera is usually added well before it sends anything, and a health probe notices the edit."""
        model = self.detector.models.current
        if model is not None:
            threading.Thread(target=warm_up, args=(model.detector, config.cameras, self.settings.warm_up_s), name="warm-up", daemon=True).start()

    def start(self) -> None:
        """Start retrying the queue in the background (so it drains when the ledger is back, traffic or not), and
        trying the database while it is away."""
        self.link.start()
        self.live.start()
        if self.settings.streams:
            self.streams.start()

    def close(self) -> None:
        """Report the current state of open incidents (their last_seen) and release the database. With the
        ledger down, those reports go to the journal with the rest and are posted after the restart."""
        self.streams.stop()  # no new samples while the rest shuts down
        self.link.stop()
        self.live.stop()
        self.detector.batcher.close()
        self.live.flush()
        self.detector.models.stop()
        self.store.close()

    def reject(self, case_id: int, *, actor: str, reason: str, fixture: bool, source: str = "api") -> Rejection:
        """Reject a case, with fixtures for its spot if asked (under the engine lock: the config may change)."""
        if not fixture:
            return reject(self.store, case_id, actor=actor, reason=reason, source=source)
        with self.engine_lock:
            return reject(self.store, case_id, actor=actor, reason=reason, fixture_source=self.cameras.source, source=source)

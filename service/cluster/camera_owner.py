"""The one actor that owns a camera on the cluster (`camera:<id>`; the patrol photos' is `patrol`): its engine
state, its frame order, its ledger writes and its journal.

Ray runs an actor's calls one at a time, so a camera's frames reach its engine in the order they were taken
(a frame not newer than the last one is refused with 409, as in one process). The detector is a call to the
replicas (`detector_replica.py`), batched there with other cameras' frames.

State that outlives the actor: `Intake` checkpoints the camera's engine state (`pipeline/live/camera_state.py`)
into the ledger in the transaction that posts a frame's reports and frame time (and every `state_every_s` of
frame time otherwise), or, while the database is away, journals it beside the reports, on the head node
(`journal.py`). The actor is created with `max_restarts=-1`: when its process or node dies, Ray creates it again
on a living node, and `__init__` takes up the newest state (the ledger's, or the journal's, which is newer) and
the frame order (the ledger's `camera_frames` and the journal's marks), then replays the journal first. A
frame in flight when the actor died was not acknowledged (503): resent, it is processed once, or refused with
409 if it had reached the ledger. A checkpoint carries a version, so a stale writer never overwrites a newer
state.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import numpy as np
import ray

from pipeline.config import ConfigSource, StreetOrderConfig
from pipeline.live.outages import CameraOutages
from pipeline.source.streams import StreamStatus
from pipeline.db.frame_marks import last_frames
from pipeline.domain import GeoPoint, Location
from pipeline.engine import Engine
from pipeline.live.camera_state import CameraCheckpoint, CameraStateBook
from pipeline.live.intake import Deferred, Intake, IntakeResult
from pipeline.source.frames import Frame

from ..runtime.errors import NotFound, Overloaded
from ..runtime.streams import StreamWorkers
from ..runtime.ledger import LedgerLink
from ..runtime.live import check_order, deferred_error, posted_reports, tidy_evidence
from ..settings import ServiceSettings
from .calls import owner_name, unwrap
from .detector_replica import Detected
from .journal import kept_queue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OwnerInfo:
    """Who owns a camera now, for /metrics: its node and process, and how it started."""

    camera_id: str | None
    node: str
    pid: int
    started_at: datetime
    restarted: bool  # re-created by Ray after its process or node died
    restored_from: str | None  # "ledger", "journal" or None (a camera seen for the first time)
    frames: int = 0
    backlog: int = 0
    backlog_error: str | None = None
    last_frame: datetime | None = None
    stream: StreamStatus | None = None  # the camera's stream, when its config names one (the owner reads it)
    stream_outcomes: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    """A frame or photo through the owner: the model that saw it, what intake made of it, who owned it."""

    result: IntakeResult
    owner: OwnerInfo
    detected: Detected
    location: Location | None = None
    created: int = field(default=0)

    @property
    def model(self) -> str:
        return self.detected.model


class CameraOwner:
    """The Ray actor (see the module doc). `camera_id` None: the patrol photos (no camera state to keep)."""

    def __init__(self, settings: ServiceSettings, camera_id: str | None, detector, keeper) -> None:
        import ray

        ctx = ray.get_runtime_context()
        self.settings, self.camera_id, self.detector, self.keeper = settings, camera_id, detector, keeper
        self.name = owner_name(camera_id)
        self.node, self.pid, self.started_at = ctx.get_node_id(), os.getpid(), datetime.now(UTC)
        with warnings.catch_warnings():  # Ray's own property reads a deprecated attribute of itself
            warnings.simplefilter("ignore", DeprecationWarning)
            self.restarted = bool(ctx.was_current_actor_reconstructed)
        self.lock = threading.Lock()  # the engine and the queue: the actor's calls and the retry thread
        self.link = LedgerLink(settings.ledger_settings(), settings.retry_interval_s)
        self.store = self.link.open_store()
        self.source = ConfigSource(settings.camera_config)
        self.engine = Engine(self.source, detector=None, evidence_dir=Path(settings.evidence_dir) / quote(self.name, safe=""))
        self.intake = Intake(
            self.engine, self.store, queue=kept_queue(keeper, self.name), mark_frames=True,
            states=CameraStateBook(self.store.db) if camera_id else None, state_every_s=settings.state_every_s,
        )
        self.intake.hold = self.link.hold
        self.last_frame: datetime | None = self.intake.queue.frame_marks().get(camera_id) if camera_id else None
        self.restored_from: str | None = None
        self.ready = camera_id is None  # a camera takes frames once its state is known
        self.frames = 0
        self.link.before_up(self._restore)
        self.link.after_up(self.retry)
        if self.link.up:
            self._restore()
        elif self.intake.queue.states().get(camera_id) is not None:
            self._take_state(None)  # the journal's state is newer than anything in the ledger
        self.retry()  # the journal from before a restart goes first
        self._stop = threading.Event()
        self.link.start()
        threading.Thread(target=self._retry_loop, name="journal-retry", daemon=True).start()
        # the camera's stream, if its config names one: read here, its samples through `process_frame` as a POST's
        self.streams = StreamWorkers(OneCamera(self.source, camera_id), self, CameraOutages(self.store.db), self.link, max_pixels=settings.max_pixels)
        if camera_id is not None and settings.streams:
            self.streams.start()
        log.warning("%s owned by node %s pid %d (%s, state from %s)", self.name, self.node[:8], self.pid, "re-created" if self.restarted else "new", self.restored_from or "nothing")

    # ---- state --------------------------------------------------------------------------------------

    def _restore(self) -> None:
        """The camera's frame order and state from the ledger (run at start, and each time the ledger comes back;
        the state is taken up once, before the camera's first frame here)."""
        if self.camera_id is None:
            return
        mark = last_frames(self.store.db).get(self.camera_id)
        stored = self.intake.states.load(self.camera_id)
        with self.lock:
            if mark is not None and (self.last_frame is None or mark > self.last_frame):
                self.last_frame = mark
            if not self.ready:
                self._take_state(stored)

    def _take_state(self, stored: CameraCheckpoint | None) -> None:
        """Restore the newer of the ledger's state (`stored`) and the journal's; the camera is then ready."""
        journaled = self.intake.queue.states().get(self.camera_id)
        best = max((cp for cp in (stored, journaled) if cp is not None), key=lambda cp: cp.version, default=None)
        if best is not None and self.intake.restore({self.camera_id: best}):
            self.restored_from = "journal" if best is journaled else "ledger"
            if self.last_frame is None or best.frame_at > self.last_frame:
                self.last_frame = best.frame_at
        self.ready = True

    # ---- frames and photos --------------------------------------------------------------------------

    @ray.method(concurrency_group="info")
    def ping(self) -> OwnerInfo:
        """Who owns the camera and how it goes; in a concurrency group of its own, so it never waits for a frame."""
        return self.info()

    def info(self) -> OwnerInfo:
        streams = self.streams.statuses()
        outcomes = self.streams.outcomes().get(self.camera_id, {})
        return OwnerInfo(
            self.camera_id, self.node, self.pid, self.started_at, self.restarted, self.restored_from, self.frames,
            len(self.intake.queue.reports), self.intake.last_error if self.intake.queue.pending else None, self.last_frame,
            streams[0] if streams else None, dict(outcomes),
        )

    def _detect(self, image: np.ndarray, camera):
        try:
            return self.detector.detect.remote(image, camera).result(timeout_s=120)
        except Exception as e:
            raise unwrap(e, "a detector replica", self.settings.retry_after_s) from None

    def frame(self, at: datetime, image: np.ndarray) -> Reply:
        """The frame through the detector, the engine and the ledger; raises what the one-process service would
        (409 out of order, 404 unknown camera, 202 `Accepted` when the ledger is away and it was journaled)."""
        return self.process_frame(self.camera_id, at, image)

    def process_frame(self, camera_id: str, at: datetime, image: np.ndarray) -> Reply:
        """`frame`, for a POSTed frame and for a sample of the camera's stream alike (`LiveIntake`'s name, which
        the stream workers call)."""
        assert camera_id == self.camera_id, f"{self.name} got a frame of camera '{camera_id}'"
        with self.lock:
            if not self.ready:
                raise Overloaded(f"camera '{camera_id}' was moved and its state cannot be read while the ledger database is away; resend the frame later", self.settings.retry_after_s)
            check_order(camera_id, at, self.last_frame)
            try:
                camera = self.source.get().camera(camera_id)
            except KeyError as e:
                raise NotFound(e.args[0]) from None
        found = self._detect(image, camera)
        with self.lock:
            check_order(camera_id, at, self.last_frame)
            self.last_frame = at  # the engine sees it now, whatever happens next
            self.frames += 1
            try:
                result = self.intake.frame(Frame(image, at, camera_id, source=f"api:{camera_id}", meta={"model": found.model}), found.detections)
            except Deferred as e:
                tidy_evidence(self.store, e.written)
                raise deferred_error(e, "frame") from None
            tidy_evidence(self.store, posted_reports(result))
            return Reply(result, self.info(), found, created=_created(result))

    def photo(self, image: np.ndarray, at: datetime, gps: GeoPoint, place: dict[str, str], source: str, model: str, detections) -> Reply:
        """A patrol photo, detected already (the ingress asked a replica, as for /detect): the `patrol` owner has
        them all, since their dedup by place and time is global."""
        with self.lock:
            self.frames += 1
            frame = Frame(image, at, None, gps, source=source, meta={"model": model})
            location = self.engine.patrol_location(frame)
            if place:
                location = Location.model_validate({**location.model_dump(), **place})
            try:
                result = self.intake.photo(frame, location, detections)
            except Deferred as e:
                tidy_evidence(self.store, e.written)
                raise deferred_error(e, "photo") from None
            tidy_evidence(self.store, posted_reports(result))
            return Reply(result, self.info(), Detected(model, detections, 0.0, 0, ""), location, created=_created(result))

    # ---- the journal --------------------------------------------------------------------------------

    def _retry_loop(self) -> None:
        while not self._stop.wait(self.settings.retry_interval_s):
            if self.intake.queue.pending and self.link.up:
                self.retry()

    def retry(self) -> int:
        """Post what waits in the journal, in order; returns how many entries went through."""
        with self.lock:
            if not self.intake.queue.pending:
                return 0
            try:
                done = self.intake.drain()
            except Exception as e:
                log.exception("%s: the journal is stuck", self.name)
                self.intake.last_error = f"{type(e).__name__}: {e}"
                return 0
            tidy_evidence(self.store, [entry.report() for entry, post in done if post is not None])
            return len(done)

    def close(self) -> int:
        """Before the service stops: report the open incidents' current state and checkpoint the camera (as
        `ServiceState.close`); returns how many reports wait in the journal."""
        self._stop.set()
        self.streams.stop()
        self.link.stop()
        with self.lock:
            try:
                self.intake.flush()
            except Deferred:
                pass  # journaled: posted when the service starts again
            backlog = len(self.intake.queue.reports)
        self.store.close()
        return backlog


def _created(result: IntakeResult) -> int:
    return sum(1 for p in [*result.posted, *(p for _, p in result.retried)] if p is not None and p.created)


class OneCamera:
    """`Cameras`' face for a camera owner's stream worker: the config with this camera alone, so the owner reads
    only its own camera's stream."""

    def __init__(self, source: ConfigSource, camera_id: str | None) -> None:
        self.source, self.camera_id = source, camera_id

    def config(self) -> StreetOrderConfig:
        config = self.source.get()
        return config.model_copy(update={"cameras": tuple(c for c in config.cameras if c.id == self.camera_id)})

    def camera(self, camera_id: str):
        try:
            return self.source.get().camera(camera_id)
        except KeyError as e:
            raise NotFound(e.args[0]) from None

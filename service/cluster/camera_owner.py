"""The actors that own the cameras on a cluster: each owns a shard of them (`owner:<k>-of-<n>`, by rendezvous
hashing of the camera id, `calls.owner_index`; the patrol photos' is `patrol`), and per camera its engine
state, its frame order, its ledger writes and its journal (`CameraSeat`).

One process per camera was the wrong grain (each was ~300 MB resident for a few KB of engine state); an owner
holds many cameras in one process. Its calls run on threads (`max_concurrency`): a camera's frames go one at a
time through that camera's `order` lock, held from the order check through the detector to the engine, so they
reach its engine in the order they were taken (a frame not newer than the last one is refused with 409, as in
one process), while the frames of the owner's other cameras wait for the detector beside it. The engine steps,
ledger writes and journal of the owner's cameras take the owner's `lock` in turn (short, next to the
detector). The detector is a call to the replicas (`detector_replica.py`), batched there with other frames.

State that outlives the actor: `Intake` checkpoints each camera's engine state (`pipeline/live/camera_state.py`)
into the ledger in the transaction that posts a frame's reports and frame time (and every `state_every_s` of
frame time otherwise), or, while the database is away, journals it beside the reports, on the head node
(`journal.py`, one journal per camera, named by the camera: it follows the camera to whichever owner holds it).
The actor is created with `max_restarts=-1`: when its process or node dies, Ray creates it again on a living
node, and `__init__` takes up each of its cameras' newest state (the ledger's, or the journal's, which is
newer) and frame order (the ledger's `camera_frames` and the journal's marks), then replays the journals first.
A frame in flight when the actor died was not acknowledged (503): resent, it is processed once, or refused with
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
from .calls import camera_key, owner_index, owner_name, unwrap
from .detector_replica import Detected
from .journal import kept_queue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OwnerInfo:
    """Who owns a camera now, for /metrics: its owner actor, node and process, and how it started."""

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
    owner: str = ""  # the owner actor's name


@dataclass(frozen=True)
class OwnerReport:
    """An owner and each of its cameras (`ping`)."""

    name: str
    node: str
    pid: int
    restarted: bool
    cameras: tuple[OwnerInfo, ...]

    def camera(self, camera_id: str | None) -> OwnerInfo:
        for info in self.cameras:
            if info.camera_id == camera_id:
                return info
        raise KeyError(f"{self.name} holds no camera '{camera_id}'")

    @property
    def frames(self) -> int:
        return sum(i.frames for i in self.cameras)

    @property
    def backlog(self) -> int:
        return sum(i.backlog for i in self.cameras)


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


class CameraSeat:
    """One camera inside its owner: its engine and intake (journal, checkpoints), frame order and restore."""

    def __init__(self, owner: CameraOwner, camera_id: str | None) -> None:
        self.owner, self.camera_id = owner, camera_id
        self.key = camera_key(camera_id)
        self.order = threading.Lock()  # the camera's frames one at a time, detector included
        settings, store = owner.settings, owner.store
        self.engine = Engine(owner.source, detector=None, evidence_dir=Path(settings.evidence_dir) / quote(self.key, safe=""))
        self.intake = Intake(
            self.engine, store, queue=kept_queue(owner.keeper, self.key), mark_frames=True,
            states=CameraStateBook(store.db) if camera_id else None, state_every_s=settings.state_every_s,
        )
        self.intake.hold = owner.link.hold
        self.last_frame: datetime | None = self.intake.queue.frame_marks().get(camera_id) if camera_id else None
        self.restored_from: str | None = None
        self.ready = camera_id is None  # a camera takes frames once its state is known
        self.frames = 0
        if owner.link.up:
            self.restore(last_frames(store.db) if camera_id else {})
        elif camera_id is not None and self.intake.queue.states().get(camera_id) is not None:
            self._take_state(None)  # the journal's state is newer than anything in the ledger

    def restore(self, marks: dict[str, datetime]) -> None:
        """The camera's frame order (`marks`, the ledger's) and state from the ledger (at start, and each time
        the ledger comes back; the state is taken up once, before the camera's first frame here). Caller holds
        the owner's lock, or is the constructor."""
        if self.camera_id is None:
            return
        mark = marks.get(self.camera_id)
        if mark is not None and (self.last_frame is None or mark > self.last_frame):
            self.last_frame = mark
        if not self.ready:
            self._take_state(self.intake.states.load(self.camera_id))

    def _take_state(self, stored: CameraCheckpoint | None) -> None:
        """Restore the newer of the ledger's state (`stored`) and the journal's; the camera is then ready."""
        journaled = self.intake.queue.states().get(self.camera_id)
        best = max((cp for cp in (stored, journaled) if cp is not None), key=lambda cp: cp.version, default=None)
        if best is not None and self.intake.restore({self.camera_id: best}):
            self.restored_from = "journal" if best is journaled else "ledger"
            if self.last_frame is None or best.frame_at > self.last_frame:
                self.last_frame = best.frame_at
        self.ready = True

    def info(self, stream: StreamStatus | None, outcomes: dict[str, int]) -> OwnerInfo:
        o = self.owner
        return OwnerInfo(
            self.camera_id, o.node, o.pid, o.started_at, o.restarted, self.restored_from, self.frames,
            len(self.intake.queue.reports), self.intake.last_error if self.intake.queue.pending else None, self.last_frame,
            stream, dict(outcomes), o.name,
        )


class CameraOwner:
    """The Ray actor (see the module doc): owner `index` of `owners`, or (`index` None) the patrol photos'."""

    def __init__(self, settings: ServiceSettings, index: int | None, owners: int, detector, keeper) -> None:
        import ray

        ctx = ray.get_runtime_context()
        self.settings, self.index, self.owners, self.detector, self.keeper = settings, index, owners, detector, keeper
        self.name = owner_name(index, owners)
        self.node, self.pid, self.started_at = ctx.get_node_id(), os.getpid(), datetime.now(UTC)
        with warnings.catch_warnings(record=True):  # Ray's own property reads a deprecated attribute of itself: recorded, not shown
            warnings.simplefilter("always", DeprecationWarning)
            self.restarted = bool(ctx.was_current_actor_reconstructed)
        self.lock = threading.RLock()  # the engines, the intakes and the journals: every camera's, and the retry thread
        self.link = LedgerLink(settings.ledger_settings(), settings.retry_interval_s)
        self.store = self.link.open_store()
        self.source = ConfigSource(settings.camera_config)
        self.seats: dict[str | None, CameraSeat] = {}
        with self.lock:
            for camera_id in ([None] if index is None else [c.id for c in self.source.get().cameras if self.owns(c.id)]):
                self.seats[camera_id] = CameraSeat(self, camera_id)
        self.link.before_up(self._restore)
        self.link.after_up(self.retry)
        self.retry()  # the journals from before a restart go first
        self._stop = threading.Event()
        self.link.start()
        threading.Thread(target=self._retry_loop, name="journal-retry", daemon=True).start()
        # the streams of the owner's cameras, where their config names one: read here, each sample through
        # `process_frame` as a POST's
        self.streams = StreamWorkers(OwnedCameras(self.source, self.owns), self, CameraOutages(self.store.db), self.link, max_pixels=settings.max_pixels)
        if index is not None and settings.streams:
            self.streams.start()
        restored = sum(1 for s in self.seats.values() if s.restored_from)
        log.warning("%s (%d camera(s), %d restored) on node %s pid %d (%s)", self.name, len(self.seats), restored, self.node[:8], self.pid, "re-created" if self.restarted else "new")

    def owns(self, camera_id: str | None) -> bool:
        if self.index is None:
            return camera_id is None
        return camera_id is not None and owner_index(camera_id, self.owners) == self.index

    def seat(self, camera_id: str | None) -> CameraSeat:
        """The camera's seat here, made (and its state restored) on its first frame if it came after the start."""
        seat = self.seats.get(camera_id)
        if seat is None:
            if not self.owns(camera_id):
                raise AssertionError(f"{self.name} got a frame of camera '{camera_id}', which it does not own")
            with self.lock:
                seat = self.seats.get(camera_id)
                if seat is None:
                    seat = self.seats[camera_id] = CameraSeat(self, camera_id)
        return seat

    # ---- state --------------------------------------------------------------------------------------

    def _restore(self) -> None:
        """Each camera's frame order and state from the ledger (each time the ledger comes back)."""
        if self.index is None:
            return
        marks = last_frames(self.store.db)
        with self.lock:
            for seat in list(self.seats.values()):
                seat.restore(marks)

    # ---- frames and photos --------------------------------------------------------------------------

    @ray.method(concurrency_group="info")
    def ping(self) -> OwnerReport:
        """The owner and each of its cameras; in a concurrency group of its own, so it never waits for a frame."""
        return OwnerReport(self.name, self.node, self.pid, self.restarted, tuple(self.info(cid) for cid in list(self.seats)))

    def info(self, camera_id: str | None) -> OwnerInfo:
        stream = next((st for st in self.streams.statuses() if st.camera_id == camera_id), None)
        return self.seats[camera_id].info(stream, self.streams.outcomes().get(camera_id, {}))

    def _detect(self, image: np.ndarray, camera):
        try:
            return self.detector.detect.remote(image, camera).result(timeout_s=120)
        except Exception as e:
            raise unwrap(e, "a detector replica", self.settings.retry_after_s) from None

    def frame(self, camera_id: str, at: datetime, image: np.ndarray) -> Reply:
        """The frame through the detector, the engine and the ledger; raises what the one-process service would
        (409 out of order, 404 unknown camera, 202 `Accepted` when the ledger is away and it was journaled)."""
        return self.process_frame(camera_id, at, image)

    def process_frame(self, camera_id: str, at: datetime, image: np.ndarray) -> Reply:
        """`frame`, for a POSTed frame and for a sample of the camera's stream alike (`LiveIntake`'s name, which
        the stream workers call)."""
        seat = self.seat(camera_id)
        with seat.order:  # this camera's frames in order; the owner's other cameras go on meanwhile
            if not seat.ready:
                raise Overloaded(f"camera '{camera_id}' was moved and its state cannot be read while the ledger database is away; resend the frame later", self.settings.retry_after_s)
            check_order(camera_id, at, seat.last_frame)
            try:
                camera = self.source.get().camera(camera_id)
            except KeyError as e:
                raise NotFound(e.args[0]) from None
            found = self._detect(image, camera)  # no owner-wide lock held: the owner's cameras detect side by side
            with self.lock:
                check_order(camera_id, at, seat.last_frame)
                seat.last_frame = at  # the engine sees it now, whatever happens next
                seat.frames += 1
                try:
                    result = seat.intake.frame(Frame(image, at, camera_id, source=f"api:{camera_id}", meta={"model": found.model}), found.detections)
                except Deferred as e:
                    tidy_evidence(self.store, e.written)
                    raise deferred_error(e, "frame") from None
                tidy_evidence(self.store, posted_reports(result))
                return Reply(result, self.info(camera_id), found, created=_created(result))

    def photo(self, image: np.ndarray, at: datetime, gps: GeoPoint, place: dict[str, str], source: str, model: str, detections) -> Reply:
        """A patrol photo, detected already (the ingress asked a replica, as for /detect): the `patrol` owner has
        them all, since their dedup by place and time is global."""
        seat = self.seat(None)
        with self.lock:
            seat.frames += 1
            frame = Frame(image, at, None, gps, source=source, meta={"model": model})
            location = seat.engine.patrol_location(frame)
            if place:
                location = Location.model_validate({**location.model_dump(), **place})
            try:
                result = seat.intake.photo(frame, location, detections)
            except Deferred as e:
                tidy_evidence(self.store, e.written)
                raise deferred_error(e, "photo") from None
            tidy_evidence(self.store, posted_reports(result))
            return Reply(result, self.info(None), Detected(model, detections, 0.0, 0, ""), location, created=_created(result))

    # ---- the journal --------------------------------------------------------------------------------

    def _retry_loop(self) -> None:
        while not self._stop.wait(self.settings.retry_interval_s):
            if self.link.up and any(s.intake.queue.pending for s in list(self.seats.values())):
                self.retry()

    def retry(self) -> int:
        """Post what waits in the cameras' journals, each in order; returns how many entries went through."""
        done = 0
        with self.lock:
            for seat in list(self.seats.values()):
                if not seat.intake.queue.pending:
                    continue
                try:
                    posted = seat.intake.drain()
                except Exception as e:
                    log.exception("%s: the journal of %s is stuck", self.name, seat.key)
                    seat.intake.last_error = f"{type(e).__name__}: {e}"
                    continue
                tidy_evidence(self.store, [entry.report() for entry, post in posted if post is not None])
                done += len(posted)
        return done

    def close(self) -> int:
        """Before the service stops: report each camera's open incidents' current state and checkpoint it (as
        `ServiceState.close`); returns how many reports wait in the journals."""
        self._stop.set()
        self.streams.stop()
        self.link.stop()
        backlog = 0
        with self.lock:
            for seat in self.seats.values():
                try:
                    seat.intake.flush()
                except Deferred:
                    pass  # journaled: posted when the service starts again
                backlog += len(seat.intake.queue.reports)
        self.store.close()
        return backlog


def _created(result: IntakeResult) -> int:
    return sum(1 for p in [*result.posted, *(p for _, p in result.retried)] if p is not None and p.created)


class OwnedCameras:
    """`Cameras`' face for an owner's stream workers: the config with the owner's cameras alone, so each owner
    reads only its own cameras' streams."""

    def __init__(self, source: ConfigSource, owns) -> None:
        self.source, self.owns = source, owns

    def config(self) -> StreetOrderConfig:
        config = self.source.get()
        return config.model_copy(update={"cameras": tuple(c for c in config.cameras if self.owns(c.id))})

    def camera(self, camera_id: str):
        try:
            return self.source.get().camera(camera_id)
        except KeyError as e:
            raise NotFound(e.args[0]) from None

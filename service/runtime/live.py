"""The live intake: frames and patrol photos through the detector, the engine and into the ledger, each camera's
frames in time order, and the journaled queue that keeps what the ledger cannot take yet.

Everything that touches the engine runs under the engine lock (`state.py` says why); detection runs before it
is taken.

Durability: what the ledger cannot take yet (database down) waits in the intake queue, which is journaled to
`settings.journal` (fsync'ed) before the caller hears 202, retried in order by a background thread, replayed
first after a restart, and flushed into on shutdown. Each camera's last frame time goes the same way into the
ledger's `camera_frames`, so frame order holds across restarts.

Started during a database outage (`LedgerLink` down), the intake writes nothing until the link is up: every
frame's reports and frame time go to the journal (202). The ledger's frame times are read when it comes back
and merged with what was seen since; until then frame order is checked against the journal and this run.

Camera state: each camera's engine state (tracks, dwell timers, open incidents) is checkpointed to the ledger's
`camera_state` with its frames (`Intake`, `pipeline.live.camera_state`) and restored before the camera's first
frame: on start from the ledger and from the journal (whose pending checkpoints are newer), and, for a start
during an outage, when the ledger answers (for cameras that have sent no frame since the start; one that has
goes on with the state it built meanwhile, which is newer).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import supervision as sv

from pipeline.cases import CaseStore
from pipeline.db.frame_marks import last_frames
from pipeline.detect.plan import frame_detector
from pipeline.domain import GeoPoint, IncidentReport, Location
from pipeline.engine import Engine
from pipeline.source.frames import Frame
from pipeline.live.camera_state import CameraCheckpoint, CameraStateBook
from pipeline.live.intake import Deferred, Intake, IntakeResult
from pipeline.live.report_queue import ReportQueue

from ..settings import ServiceSettings
from .cameras import Cameras
from .detector import DetectorRuntime
from .errors import Accepted, Conflict, NotFound, Unavailable, Unprocessable
from .batching import Pending
from .frame_order import FrameOrder, Slot
from .ledger import LedgerLink
from .metrics import ServiceMetrics
from .model_slot import LoadedModel

log = logging.getLogger(__name__)


@dataclass
class FrameJob:
    """A camera frame between `begin_frame` and `end_frame`: its place in the camera's frame order and its image
    at the detector."""

    camera_id: str
    at: datetime
    image: np.ndarray
    model: LoadedModel
    slot: Slot
    pending: Pending

    def abandon(self) -> None:
        """The frame will not reach the engine (the detector failed, the caller went away). Its input stays
        reserved until the detector is done with it (at once if it already is), as `Pending.wait` does."""
        self.slot.leave()
        self.pending.future.add_done_callback(lambda _: self.pending.close())


@dataclass
class Processed:
    """One frame or photo through the service: the model that saw it and what intake made of it."""

    model: LoadedModel
    result: IntakeResult
    width: int
    height: int


class LiveIntake:
    """The engine and its intake into the ledger; `lock` is the engine lock (shared with `Cameras`)."""

    def __init__(
        self, settings: ServiceSettings, cameras: Cameras, store: CaseStore, detector: DetectorRuntime, metrics: ServiceMetrics, lock: threading.Lock,
        link: LedgerLink | None = None,
    ) -> None:
        self.settings = settings
        self.cameras = cameras
        self.store = store
        self.detector = detector
        self.metrics = metrics
        self.lock = lock
        self.engine = Engine(cameras.source, detector=None, evidence_dir=settings.evidence_dir)
        self.states = CameraStateBook(store.db)
        self.intake = Intake(self.engine, store, queue=ReportQueue(settings.journal), mark_frames=True, states=self.states, state_every_s=settings.state_every_s)
        self.frame_order = FrameOrder()
        self.link = link
        self._seen: set[str] = set()  # cameras whose frames the engine has seen in this run
        self._restored: dict[str, int] = {}  # camera -> version of the state restored
        if link is not None:
            self.intake.hold = link.hold
            link.before_up(self.read_ledger_marks)
            link.before_up(self.read_ledger_states)
            link.after_up(self.retry_queue)
        # frame order as the ledger stored it, and as the journal holds it for what the ledger has not yet
        self.last_frame: dict[str, datetime] = {}
        self._merge_marks(self.intake.queue.frame_marks())
        if link is None or link.up:
            self._merge_marks(last_frames(store.db))
            self._restore(self.states.load_all(), "the ledger")
        self._restore(self.intake.queue.states(), "the journal")
        self._stop = threading.Event()
        self._retry: threading.Thread | None = None
        self.retry_queue()  # the journal from before a restart goes first

    def _merge_marks(self, marks: dict[str, datetime]) -> None:
        for camera_id, at in marks.items():
            if camera_id not in self.last_frame or at > self.last_frame[camera_id]:
                self.last_frame[camera_id] = at

    def _restore(self, checkpoints: dict[str, CameraCheckpoint], where: str) -> None:
        """Restore the cameras of `checkpoints` that are configured, have not sent a frame in this run, and hold
        an older state (or none). Under the engine lock, or before the service takes requests."""
        configured = {c.id for c in self.cameras.source.get().cameras}
        take = {
            cid: ckpt for cid, ckpt in checkpoints.items()
            if cid in configured and cid not in self._seen and ckpt.version > self._restored.get(cid, -1)
        }
        for cid in self.intake.restore(take):
            self._restored[cid] = take[cid].version
            log.info("camera '%s': engine state restored from %s as of its frame at %s", cid, where, take[cid].frame_at.isoformat())

    def read_ledger_states(self) -> None:
        """Each camera's engine state as the ledger stored it, restored for cameras that have sent no frame since
        the start (when the ledger comes back after a start during an outage)."""
        checkpoints = self.states.load_all()
        with self.lock:
            self._restore(checkpoints, "the ledger")

    def read_ledger_marks(self) -> None:
        """Each camera's last frame time as the ledger stored it, merged into ours (when the ledger comes back)."""
        marks = last_frames(self.store.db)
        with self.lock:
            self._merge_marks(marks)

    # ---- the report queue ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start retrying the queue in the background (so it drains when the ledger is back, traffic or not)."""
        if self._retry is None:
            self._retry = threading.Thread(target=self._retry_loop, name="report-queue-retry", daemon=True)
            self._retry.start()

    def stop(self) -> None:
        """Stop retrying (waits for a retry under way)."""
        self._stop.set()
        if self._retry is not None:
            self._retry.join(timeout=30)

    def flush(self) -> None:
        """Report the current state of open incidents (their last_seen). With the ledger down, those reports go
        to the journal with the rest and are posted after the restart."""
        with self.lock:
            try:
                self.intake.flush()
            except Deferred as e:
                (log.warning if e.durable else log.error)(
                    "ledger unavailable at shutdown (%s): %d report(s) %s", e, e.queued, "kept in the journal for the next start" if e.durable else "could NOT be journaled"
                )
            except Exception:  # shutting down: log and go on closing
                log.exception("could not flush open incidents at shutdown")

    def _retry_loop(self) -> None:
        while not self._stop.wait(self.settings.retry_interval_s):
            if self.intake.queue.pending and (self.link is None or self.link.up):
                self.retry_queue()

    def retry_queue(self) -> int:
        """Post what waits in the queue, in order; returns how many entries went through. A transient failure
        leaves the rest for the next try (and is what /ready reports)."""
        with self.lock:
            if not self.intake.queue.pending:
                return 0
            try:
                done = self.intake.drain()
            except Exception as e:  # not the database being away: quarantining itself failed
                log.exception("the report queue is stuck")
                self.intake.last_error = f"{type(e).__name__}: {e}"
                return 0
            posted = [(entry.report(), post) for entry, post in done if post is not None]
            self._tidy([report for report, _ in posted])
            for report, post in posted:  # cases the retry opened count as the routes' own do
                if post.created:
                    self.metrics.cases_created.labels("photo" if report.source == "patrol" else "frame").inc()
            if done:
                log.info("report queue: %d entr(ies) written to the ledger, %d left", len(done), len(self.intake.queue))
            return len(done)

    @property
    def backlog(self) -> int:
        """Incident reports waiting for the ledger."""
        return len(self.intake.queue.reports)

    @property
    def backlog_error(self) -> str | None:
        """Why the queue is not draining (so it grows), None while it drains or is empty."""
        return self.intake.last_error if self.intake.queue.pending else None

    # ---- frames and photos --------------------------------------------------------------------------

    def check_taken_at(self, at: datetime, what: str = "taken_at") -> None:
        check_taken_at(self.settings, at, what)

    def _check_order(self, camera_id: str, at: datetime) -> None:
        check_order(camera_id, at, self.last_frame.get(camera_id))

    def process_frame(self, camera_id: str, at: datetime, image: np.ndarray) -> Processed:
        """Detect, then run the engine and commit the cases, so the response reports committed cases only.

        If the ledger fails after the engine has seen the frame, the frame's incident reports wait in the
        journaled queue and are posted in order when the ledger is back: the answer is 202 (`Accepted`) and the
        frame must not be resent. (On one thread; the route runs `begin_frame`, awaits the detector, then
        `end_frame`.)
        """
        job = self.begin_frame(camera_id, at, image)
        try:
            raw = job.pending.future.result()
        except BaseException:
            job.abandon()
            raise
        return self.end_frame(job, raw)

    def begin_frame(self, camera_id: str, at: datetime, image: np.ndarray) -> FrameJob:
        """The checks that need no detector, then the image queued for the detector. Nothing is kept yet: a
        refusal from here on (409, 422, 503) leaves the camera's frame order as it was, so it resends."""
        self.check_taken_at(at)
        camera = self.cameras.camera(camera_id)
        with self.lock:
            self._check_order(camera_id, at)  # fail before paying for inference
        model = self.detector.models.require()
        slot = self.frame_order.register(camera_id, at)
        try:
            # the camera's detector: the model itself, or sliced over tiles where the camera or a zone asks
            pending = self.detector.batcher.submit(frame_detector(model.detector, camera, image), image, model.name)
        except BaseException:
            slot.leave()  # later frames need not wait for this one
            raise
        return FrameJob(camera_id, at, image, model, slot, pending)

    def end_frame(self, job: FrameJob, raw: object) -> Processed:
        """The detector's output into boxes, then the engine and the ledger, in the camera's frame order."""
        camera_id, at, image, model = job.camera_id, job.at, job.image, job.model
        try:
            detections = job.pending.finish(raw)
        except BaseException:
            job.abandon()
            raise
        with job.slot.turn(self.lock):  # an earlier frame of this camera, detected in the same batch, goes first
            self._check_order(camera_id, at)  # another frame of this camera may have gone first
            try:
                self.cameras.source.get().camera(camera_id)
            except KeyError as e:  # removed from the config while we detected
                raise NotFound(e.args[0]) from None
            self.last_frame[camera_id] = at  # the engine sees it now, whatever happens next
            self._seen.add(camera_id)  # its state goes on from here: a checkpoint read later is older
            try:
                result = self.intake.frame(Frame(image, at, camera_id, source=f"api:{camera_id}", meta={"model": model.name}), detections)
                self._count_cases(result, "frame")
            except Deferred as e:
                self._tidy(e.written)
                raise deferred_error(e, "frame") from None
            self._tidy(posted_reports(result))
        return Processed(model, result, image.shape[1], image.shape[0])

    def process_photo(self, image: np.ndarray, at: datetime, gps: GeoPoint, place: dict[str, str], source: str) -> tuple[Processed, Location]:
        """A patrol photo: its place is the nearest camera point (or a GPS point), with `place` fields overriding.
        (On one thread; the route runs `begin_photo`, awaits the detector, then `end_photo`.)"""
        model, pending = self.begin_photo(image, at)
        return self.end_photo(model, pending.result(), image, at, gps, place, source)

    def begin_photo(self, image: np.ndarray, at: datetime) -> tuple[LoadedModel, Pending]:
        self.check_taken_at(at)
        model = self.detector.models.require()
        return model, self.detector.batcher.submit(model.detector, image, model.name)

    def end_photo(
        self, model: LoadedModel, detections: sv.Detections, image: np.ndarray, at: datetime, gps: GeoPoint, place: dict[str, str], source: str,
    ) -> tuple[Processed, Location]:
        with self.lock:
            frame = Frame(image, at, None, gps, source=source, meta={"model": model.name})
            location = self.engine.patrol_location(frame)
            if place:
                location = Location.model_validate({**location.model_dump(), **place})
            try:
                result = self.intake.photo(frame, location, detections)
                self._count_cases(result, "photo")
            except Deferred as e:
                self._tidy(e.written)
                raise deferred_error(e, "photo") from None
            self._tidy(posted_reports(result))
        return Processed(model, result, image.shape[1], image.shape[0]), location

    def _count_cases(self, result: IntakeResult, source: str) -> None:
        created = sum(1 for p in [*result.posted, *(p for _, p in result.retried)] if p is not None and p.created)
        if created:
            self.metrics.cases_created.labels(source).inc(created)

    def _tidy(self, reports: list[IncidentReport]) -> None:
        tidy_evidence(self.store, reports)


def posted_reports(result: IntakeResult) -> list[IncidentReport]:
    return [*result.frame.reports, *(r for r, _ in result.retried)]


def deferred_error(e: Deferred, what: str) -> Exception:
    """202 when the reports are safe in the journal; 503 in the one case where they are in memory only."""
    if e.durable:
        return Accepted(
            f"the {what} was processed but the ledger is unavailable ({e}); its incident reports are journaled and posted "
            f"in order when the ledger is back ({e.queued} waiting): do not resend it", queued=e.queued,
        )
    return Unavailable(f"the {what} was processed but the ledger is unavailable ({e}) and the report journal cannot be written: {e.queued} report(s) wait in memory only")


def check_taken_at(settings: ServiceSettings, at: datetime, what: str = "taken_at") -> None:
    """A capture time the engine may use: not ahead of our clock by more than the allowed skew (a camera clock in
    the future would lock its frame order), not before the configured earliest time."""
    now = datetime.now(UTC)
    skew = timedelta(seconds=settings.max_clock_skew_s)
    if at > now + skew:
        ahead = (at - now).total_seconds()
        raise Unprocessable(
            f"{what} {at.isoformat()} is {ahead:,.0f} s ahead of the service's clock ({now.isoformat(timespec='seconds')}), more than the allowed "
            f"clock skew of {skew.total_seconds():g} s: check the camera's or phone's clock; nothing was stored"
        )
    if at < settings.earliest_taken_at:
        raise Unprocessable(f"{what} {at.isoformat()} is before {settings.earliest_taken_at.isoformat()}, the earliest capture time accepted: check the camera's or phone's clock")


def check_order(camera_id: str, at: datetime, last: datetime | None) -> None:
    """409 for a frame not newer than the camera's last one (frames of a camera go in time order, each once)."""
    if last is not None and at <= last:
        what = "the same time as" if at == last else "older than"
        raise Conflict(f"camera '{camera_id}': frame taken at {at.isoformat()} is {what} its last frame ({last.isoformat()}); frames of a camera must arrive in time order, each once")


def tidy_evidence(store: CaseStore, reports: list[IncidentReport]) -> None:
    """Delete the engine's copies of evidence the ledger now holds, or a live service fills its disk. The engine
    re-reports an unchanged incident with the same hashes, which the ledger finds by hash alone; reports still
    queued keep their files (a replay may need them). Under the engine lock: the engine writes these folders."""
    for report in reports:
        for ev in report.evidence:
            if store.evidence.exists(ev.sha256):
                Path(ev.path).unlink(missing_ok=True)
        for folder in {Path(ev.path).parent for ev in report.evidence}:
            try:
                folder.rmdir()  # only when empty
            except OSError:
                pass

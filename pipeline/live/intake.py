"""Intake: the engine's incident reports go into the case ledger, and every camera frame re-checks that
camera's dispatched cases (auto-verification). The live service uses it; the night job splits the same steps
between its workers (the per-frame step, `frame_step.FrameStep`, as here) and its one ledger writer (posting,
auto-verification): see `pipeline.night`."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import psycopg
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from ..cases import AutoVerifier, CaseStore, LedgerError, PostResult, VerifyAction
from ..db.frame_marks import mark_frames_in
from ..db.quarantine import quarantine
from ..db.storage import StorageError
from ..domain import IncidentReport, Location
from ..engine import Engine, FrameResult
from ..frame_step import FrameStep
from ..samples.frame_pool import FramePool
from ..source.frames import Frame
from .camera_state import CameraCheckpoint, CameraStateBook
from .report_queue import JournalError, QueueEntry, ReportQueue, newest_per_camera

log = logging.getLogger(__name__)
WATCH_REUSE_S = 60.0  # video seconds a gated (unchanged) frame may reuse the dispatched-case list for
FRAME_RUN = 500  # queued frame times written to the ledger in one transaction at most (a long outage queues one per frame)
STATE_EVERY_S = 10.0  # frame seconds between checkpoints of a camera's engine state that posts nothing (see Intake)


class DispatchedCases:
    """Each camera's dispatched cases, for auto-verification, read from the ledger once per run of unchanged
    frames: a frame the night job's change gate marked reused (the scene has not changed since the last detected
    frame) takes the list read for an earlier frame of its camera, up to `WATCH_REUSE_S` of video before. Whoever
    changes the ledger (posts a report, verifies a case) calls `forget`. Shared by `Intake` and the night job's
    ledger writer."""

    def __init__(self, store: CaseStore) -> None:
        self.store = store
        self._read: dict[str, tuple[datetime, list]] = {}  # camera -> (frame time read, its dispatched cases)

    def of(self, camera_id: str, at: datetime, reused: bool) -> list:
        cached = self._read.get(camera_id)
        if reused and cached and 0 <= (at - cached[0]).total_seconds() < WATCH_REUSE_S:
            return cached[1]
        watched = self.store.camera_watch(camera_id)
        self._read[camera_id] = (at, watched)
        return watched

    def forget(self, camera_id: str) -> None:
        self._read.pop(camera_id, None)

class LedgerOnHold(Exception):
    """The ledger may not be written yet (`Intake.hold` says why: e.g. the service started during a database
    outage and has not seen the database since, so its schema may not be current): a transient failure."""


# Failures a later retry can get past: the database unreachable or busy, a file system error. Anything else
# (invalid data, a value the database refuses) would fail again the same way: that report is quarantined.
_TRANSIENT = (OperationalError, InterfaceError, DisconnectionError, PoolTimeout, psycopg.OperationalError, OSError, StorageError, LedgerOnHold)


def is_transient(e: BaseException) -> bool:
    return isinstance(e, _TRANSIENT) or (isinstance(e, DBAPIError) and e.connection_invalidated)


class Deferred(Exception):
    """This call's reports (and frame time) could not reach the ledger yet; they wait in the queue, durably when
    the queue has a journal. `cause` is the failure; the engine has seen the frame, so it must not be resent."""

    def __init__(self, cause: BaseException, queued: int, durable: bool, written: list[IncidentReport] | None = None) -> None:
        super().__init__(f"{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}")
        self.cause, self.queued, self.durable = cause, queued, durable
        self.written = written or []  # reports that did reach the ledger before the failure


class Quarantined(LedgerError):
    """The ledger refused one of this call's reports; it was quarantined (see `db.quarantine`) and the rest posted."""


@dataclass
class IntakeResult:
    frame: FrameResult
    posted: list[PostResult] = field(default_factory=list)  # one per `frame.reports`, in order
    verified: list[VerifyAction] = field(default_factory=list)
    retried: list[tuple[IncidentReport, PostResult]] = field(default_factory=list)  # backlog posted first


class Intake:
    """The per-frame step (engine + frame pool) + case store + auto-verifier, fed one frame or photo at a time.

    The engine moves on once it has seen a frame and does not report an incident again until it changes, so
    what the ledger could not take is kept in `queue` (with the camera's frame time, so frame order survives a
    restart) and posted first on the next call or by `drain`. A transient failure stops the queue (order
    matters: a later report of an incident must land last); the call then raises `Deferred` once the queue
    is durable.
    A report the ledger refuses as invalid would be refused again: it is quarantined with its reason instead
    of blocking the reports behind it.

    With `states` (a `CameraStateBook`; it needs `mark_frames`), each camera's engine state is checkpointed
    into the ledger with its frame time: on every frame that posts reports, in the one transaction that posts
    them (so the ledger's cases and the restored `_reported` entries agree: a restored incident is not posted
    as new again), and otherwise every `state_every_s` of the camera's frame time (what a crash can cost at
    most: that much of its tracks' history; dwell timers run on frame time, so they go on). During a database
    outage the checkpoint waits in the queue with its frame time, only the newest per camera, journaled beside
    the reports (`report_queue`): a restart then restores the state that goes with the reports it acknowledged,
    never an older one, and the ledger gets it once the reports before it are in. A checkpoint is versioned by
    its frame time, so a stale one never overwrites a newer one (`CameraStateBook.save`).
    """

    def __init__(
        self, engine: Engine, store: CaseStore, verifier: AutoVerifier | None = None, queue: ReportQueue | None = None, *, mark_frames: bool = False,
        pool: FramePool | None | str = "env", states: CameraStateBook | None = None, state_every_s: float = STATE_EVERY_S,
    ) -> None:
        if states is not None and not mark_frames:
            raise ValueError("camera state checkpoints go with the frame times: give mark_frames=True with states")
        self.step = FrameStep(engine, FramePool.from_env() if pool == "env" else pool)  # pool: frames for `samples select` (samples/frame_pool.py)
        self.store = store
        self.verifier = verifier if verifier is not None else AutoVerifier(store)
        self.queue = queue if queue is not None else ReportQueue()
        self.mark_frames = mark_frames  # store each camera's frame time in the ledger (the live service's frame order)
        self.last_error: str | None = None  # why the last attempt to write the queue stopped; None once it went through
        self.stopped_by: BaseException | None = None
        self.hold: Callable[[], str | None] | None = None  # why nothing may be written now (None: go ahead)
        self._watch = DispatchedCases(store)
        self.states = states
        self.state_every_s = state_every_s
        self._checkpointed: dict[str, datetime] = {}  # camera -> frame time of its last checkpoint (queued or saved)
        self._last_at: dict[str, datetime] = {}  # camera -> its last frame time the engine saw

    @property
    def engine(self) -> Engine:
        return self.step.engine

    @property
    def backlog(self) -> list[IncidentReport | dict]:
        """The reports waiting for the ledger, oldest first."""
        return [e._report or e.payload for e in self.queue.reports]

    def frame(self, frame: Frame, detections=None) -> IntakeResult:
        result = self.step.frame(frame, detections)
        out = IntakeResult(result)
        marks = [(frame.camera_id, frame.at, self._checkpoint(frame.camera_id, frame.at, bool(result.reports)))] if self.mark_frames else []
        out.retried, out.posted = self._submit(result.reports, marks)
        if self.verifier and frame.camera_id:
            at = self.step.local_time(frame)
            watched = self._watch.of(frame.camera_id, at, bool(frame.meta.get("reused")))
            jpeg = self.step.after_image(frame, result) if watched else None  # only paid for when a case may need it
            out.verified = self.verifier.check(frame.camera_id, at, result.present, jpeg, watched=watched)
            if out.verified or out.posted or out.retried:
                self._watch.forget(frame.camera_id)  # the ledger changed: read it again
        return out

    def photo(self, frame: Frame, location: Location | None = None, detections=None) -> IntakeResult:
        result = self.step.photo(frame, location, detections)
        out = IntakeResult(result)
        out.retried, out.posted = self._submit(result.reports, [])
        return out

    def flush(self) -> list[PostResult]:
        """Report every open incident's current state, then checkpoint each camera not checkpointed since its
        last frame (a graceful stop loses nothing of the engine's state)."""
        reports = self.engine.flush()
        marks = []
        if self.states is not None:
            for camera_id, at in self._last_at.items():
                if self._checkpointed.get(camera_id) != at:
                    marks.append((camera_id, at, self._checkpoint(camera_id, at, True)))
        retried, posted = self._submit(reports, marks)
        return [p for _, p in retried] + posted

    # ---- camera state ---------------------------------------------------------------------------------

    def _checkpoint(self, camera_id: str, at: datetime, reported: bool) -> CameraCheckpoint | None:
        """The camera's engine state as of its frame at `at`, when due: after a frame with reports, or
        `state_every_s` of frame time after its last checkpoint."""
        self._last_at[camera_id] = at
        if self.states is None:
            return None
        last = self._checkpointed.get(camera_id)
        if not reported and last is not None and (at - last).total_seconds() < self.state_every_s:
            return None
        self._checkpointed[camera_id] = at
        return CameraCheckpoint.of(camera_id, at, self.engine.snapshot_camera(camera_id))

    def restore(self, checkpoints: dict[str, CameraCheckpoint]) -> list[str]:
        """Take up each camera's checkpointed engine state (before its first frame); returns the cameras
        restored. A state that cannot be read (saved by an incompatible version) is logged and skipped: that
        camera starts afresh, as it did before checkpoints existed."""
        done = []
        for camera_id, ckpt in checkpoints.items():
            try:
                self.engine.restore_camera(camera_id, ckpt.blob)
            except Exception:
                log.exception("camera '%s': its saved engine state (as of %s) cannot be restored; it starts afresh", camera_id, ckpt.frame_at.isoformat())
                continue
            self._checkpointed[camera_id] = ckpt.frame_at
            done.append(camera_id)
        return done

    def drain(self) -> list[tuple[QueueEntry, PostResult | None]]:
        """Write the queue to the ledger in order, until it is empty or a transient failure stops it (then
        `last_error` says why and the rest stays queued). Returns each entry written, with its post result
        (None for a frame time or a quarantined report)."""
        done: list[tuple[QueueEntry, PostResult | None]] = []
        self.stopped_by = None
        runs = True  # consecutive frame times go together (one transaction, one journal write), unless that failed
        groups = True  # a frame's reports, its frame time and state go together (one transaction), unless that failed
        while self.queue.pending:
            group = self._leading_group() if groups else []
            if group:
                try:
                    posts = self._write_group(group)
                except Exception as e:
                    if is_transient(e):
                        return self._stop(e, done)
                    groups = False  # one at a time, so that only the one the ledger refuses is quarantined
                    continue
                for entry, post in zip(group, posts):
                    if isinstance(post, LedgerError):
                        self._quarantine(entry, post)
                        post = None
                    done.append((entry, post))
                self.queue.done_many(group)
                continue
            run = self.queue.leading_frames(FRAME_RUN) if runs else []
            if len(run) > 1:
                try:
                    self._write_marks(run)
                except Exception as e:
                    if is_transient(e):
                        return self._stop(e, done)
                    runs = False  # one at a time, so that only the one the ledger refuses is quarantined
                    continue
                self.queue.done_many(run)
                done.extend((entry, None) for entry in run)
                continue
            entry = self.queue.pending[0]
            try:
                done.append((entry, self._write(entry)))
            except Exception as e:
                if is_transient(e):
                    return self._stop(e, done)
                self._quarantine(entry, e)
                done.append((entry, None))
            self.queue.done(entry)
        self.last_error = None
        return done

    def _quarantine(self, entry: QueueEntry, e: BaseException) -> None:
        qid = quarantine(self.store.db, _payload_json(entry), entry.incident_id, (entry.payload or {}).get("camera_id"), e, entry.queued_at)
        log.error("incident %s refused by the ledger, quarantined as %d: %s", entry.incident_id, qid, e)
        entry.quarantine = (qid, str(e))

    def _leading_group(self) -> list[QueueEntry]:
        """The reports of one frame at the head of the queue and that frame's time (with its state) after them,
        or [] when the head is not such a group (a report replayed from the journal, a lone frame time)."""
        head = self.queue.pending[0]
        if not head.is_report or head.frame_seq is None:
            return []
        group = []
        for e in self.queue.pending:
            group.append(e)
            if not e.is_report:
                return group if e.seq == head.frame_seq else []
            if e.frame_seq != head.frame_seq:
                return []
        return []

    def _write_group(self, group: list[QueueEntry]) -> list[PostResult | LedgerError | None]:
        """One frame's reports, its frame time and its state, in one transaction (a refused report rolls back
        alone and comes back as its LedgerError)."""
        self._check_hold()
        *reports, mark = group
        posts = self.store.post_incidents([e.report() for e in reports], also=lambda s: self._mark_in(s, [mark]))
        return [*posts, None]

    def _mark_in(self, s, entries: list[QueueEntry]) -> None:
        """Frame times, newest per camera, and the newest state of each camera among `entries`, in `s`."""
        mark_frames_in(s, newest_per_camera(entries))
        if self.states is None:
            return
        states = {e.camera_id: e.state for e in entries if e.state is not None}
        for ckpt in states.values():
            if not self.states.save(s, ckpt):
                log.info("camera '%s': state as of %s not saved, the ledger holds a newer one", ckpt.camera_id, ckpt.frame_at.isoformat())

    def _stop(self, e: BaseException, done: list[tuple[QueueEntry, PostResult | None]]) -> list[tuple[QueueEntry, PostResult | None]]:
        self.last_error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        self.stopped_by = e
        return done

    def _check_hold(self) -> None:
        if self.hold is not None and (why := self.hold()) is not None:
            raise LedgerOnHold(why)

    def _write_marks(self, run: list[QueueEntry]) -> None:
        self._check_hold()
        with self.store.db.transaction() as s:
            self._mark_in(s, run)

    def _write(self, entry: QueueEntry) -> PostResult | None:
        self._check_hold()
        if entry.is_report:
            return self.store.post_incident(entry.report())
        with self.store.db.transaction() as s:
            self._mark_in(s, [entry])
        return None

    def _submit(self, reports: list[IncidentReport], marks: list[tuple[str, datetime, CameraCheckpoint | None]]) -> tuple[list[tuple[IncidentReport, PostResult]], list[PostResult]]:
        """Queue `reports` and then the frame times in `marks` (each with the camera's state, or None) behind what
        waits already, then drain. The reports of one frame go with its frame time (one transaction). Returns
        (earlier reports posted now, this call's post results in the order of `reports`)."""
        mine = [self.queue.add_report(r) for r in reports]
        added = [self.queue.add_frame(*mark) for mark in marks]
        if len(added) == 1:
            for e in mine:
                e.frame_seq = added[0].seq
        ids = {id(e) for e in mine}
        try:
            done = self.drain()
            stopped: BaseException | None = self.stopped_by
        except Exception as e:  # quarantining failed for a reason of its own: the entry stays first in the queue
            done, stopped = [], e
        if stopped is not None:
            try:
                self.queue.persist()
                durable = self.queue.journal is not None
            except JournalError:
                log.exception("the report journal cannot be written: %d report(s) wait in memory only", len(self.queue.reports))
                durable = False
            raise Deferred(stopped, len(self.queue.reports), durable, [entry.report() for entry, post in done if post is not None]) from stopped
        retried = [(entry.report(), post) for entry, post in done if entry.is_report and id(entry) not in ids and post is not None]
        refused = [entry for entry, _ in done if id(entry) in ids and entry.quarantine]
        if refused:
            raise Quarantined("; ".join(f"incident {e.incident_id} was refused by the ledger and quarantined (id {e.quarantine[0]}): {e.quarantine[1]}" for e in refused))
        return retried, [post for entry, post in done if id(entry) in ids]


def _payload_json(entry: QueueEntry) -> str:
    return json.dumps(entry.payload if entry.is_report else entry.line(), ensure_ascii=False)

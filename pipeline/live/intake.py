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
from ..db.frame_marks import mark_frames
from ..db.quarantine import quarantine
from ..db.storage import StorageError
from ..domain import IncidentReport, Location
from ..engine import Engine, FrameResult
from ..frame_step import FrameStep
from ..samples.frame_pool import FramePool
from ..source.frames import Frame
from .report_queue import JournalError, QueueEntry, ReportQueue, newest_per_camera

log = logging.getLogger(__name__)
WATCH_REUSE_S = 60.0  # video seconds a gated (unchanged) frame may reuse the dispatched-case list for
FRAME_RUN = 500  # queued frame times written to the ledger in one transaction at most (a long outage queues one per frame)


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
    """

    def __init__(self, engine: Engine, store: CaseStore, verifier: AutoVerifier | None = None, queue: ReportQueue | None = None, *, mark_frames: bool = False, pool: FramePool | None | str = "env") -> None:
        self.step = FrameStep(engine, FramePool.from_env() if pool == "env" else pool)  # pool: frames for `samples select` (samples/frame_pool.py)
        self.store = store
        self.verifier = verifier if verifier is not None else AutoVerifier(store)
        self.queue = queue if queue is not None else ReportQueue()
        self.mark_frames = mark_frames  # store each camera's frame time in the ledger (the live service's frame order)
        self.last_error: str | None = None  # why the last attempt to write the queue stopped; None once it went through
        self.stopped_by: BaseException | None = None
        self.hold: Callable[[], str | None] | None = None  # why nothing may be written now (None: go ahead)
        self._watch = DispatchedCases(store)

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
        out.retried, out.posted = self._submit(result.reports, (frame.camera_id, frame.at) if self.mark_frames else None)
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
        out.retried, out.posted = self._submit(result.reports, None)
        return out

    def flush(self) -> list[PostResult]:
        retried, posted = self._submit(self.engine.flush(), None)
        return [p for _, p in retried] + posted

    def drain(self) -> list[tuple[QueueEntry, PostResult | None]]:
        """Write the queue to the ledger in order, until it is empty or a transient failure stops it (then
        `last_error` says why and the rest stays queued). Returns each entry written, with its post result
        (None for a frame time or a quarantined report)."""
        done: list[tuple[QueueEntry, PostResult | None]] = []
        self.stopped_by = None
        runs = True  # consecutive frame times go together (one transaction, one journal write), unless that failed
        while self.queue.pending:
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
                qid = quarantine(self.store.db, _payload_json(entry), entry.incident_id, (entry.payload or {}).get("camera_id"), e, entry.queued_at)
                log.error("incident %s refused by the ledger, quarantined as %d: %s", entry.incident_id, qid, e)
                entry.quarantine = (qid, str(e))
                done.append((entry, None))
            self.queue.done(entry)
        self.last_error = None
        return done

    def _stop(self, e: BaseException, done: list[tuple[QueueEntry, PostResult | None]]) -> list[tuple[QueueEntry, PostResult | None]]:
        self.last_error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        self.stopped_by = e
        return done

    def _check_hold(self) -> None:
        if self.hold is not None and (why := self.hold()) is not None:
            raise LedgerOnHold(why)

    def _write_marks(self, run: list[QueueEntry]) -> None:
        self._check_hold()
        mark_frames(self.store.db, newest_per_camera(run))

    def _write(self, entry: QueueEntry) -> PostResult | None:
        self._check_hold()
        if entry.is_report:
            return self.store.post_incident(entry.report())
        mark_frames(self.store.db, {entry.camera_id: entry.taken_at})
        return None

    def _submit(self, reports: list[IncidentReport], mark: tuple[str, datetime] | None) -> tuple[list[tuple[IncidentReport, PostResult]], list[PostResult]]:
        """Queue `reports` (and the frame time) behind what waits already, then drain. Returns (earlier reports
        posted now, this call's post results in the order of `reports`)."""
        mine = [self.queue.add_report(r) for r in reports]
        if mark is not None:
            self.queue.add_frame(*mark)
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

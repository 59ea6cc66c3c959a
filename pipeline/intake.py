"""Intake: the engine's incident reports go into the case ledger, and every camera frame re-checks that
camera's dispatched cases (auto-verification). The night batch job and the live service both use it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from .cases import AutoVerifier, CaseStore, LedgerError, PostResult, VerifyAction
from .domain import IncidentReport, Location, local_time
from .engine import Engine, FrameResult
from .evidence import encode_jpeg, privacy_blur
from .frames import Frame

log = logging.getLogger(__name__)
WATCH_REUSE_S = 60.0  # video seconds a gated (unchanged) frame may reuse the dispatched-case list for


@dataclass
class IntakeResult:
    frame: FrameResult
    posted: list[PostResult] = field(default_factory=list)  # one per `frame.reports`, in order
    verified: list[VerifyAction] = field(default_factory=list)
    retried: list[tuple[IncidentReport, PostResult]] = field(default_factory=list)  # backlog posted first


class Intake:
    """Engine + case store + auto-verifier, fed one frame or photo at a time.

    The engine moves on once it has seen a frame and does not report an incident again until it changes, so a
    report the ledger could not take (database down) is kept in `backlog` and posted first on the next call:
    the error still propagates, but the report is not lost. A report the ledger refuses as invalid
    (`LedgerError`) would be refused again, so it is logged and dropped instead of blocking the queue.
    """

    def __init__(self, engine: Engine, store: CaseStore, verifier: AutoVerifier | None = None) -> None:
        self.engine = engine
        self.store = store
        self.verifier = verifier if verifier is not None else AutoVerifier(store)
        self.backlog: list[IncidentReport] = []
        self._watch: dict[str, tuple[datetime, list]] = {}  # camera -> (frame time read, dispatched cases)

    def _watched(self, frame: Frame, at: datetime) -> list:
        """The camera's dispatched cases. A frame the night job's change gate marked `reused` (the scene has not
        changed since the last detected frame) reuses the list read for an earlier frame, up to
        `WATCH_REUSE_S` of video before; any report posted or verification action drops it (see `frame`)."""
        cached = self._watch.get(frame.camera_id)
        if frame.meta.get("reused") and cached and 0 <= (at - cached[0]).total_seconds() < WATCH_REUSE_S:
            return cached[1]
        watched = self.store.camera_watch(frame.camera_id)
        self._watch[frame.camera_id] = (at, watched)
        return watched

    def frame(self, frame: Frame, detections=None) -> IntakeResult:
        result = self.engine.process(frame, detections)
        out = IntakeResult(result)
        out.retried, out.posted = self._post(result.reports)
        if self.verifier and frame.camera_id:
            jpeg = None
            at = local_time(frame.at, self.engine.config.camera(frame.camera_id).timezone)
            watched = self._watched(frame, at)
            if watched:  # only pay for the after-image when a case may need it
                cfg = self.engine.config.evidence
                jpeg = encode_jpeg(privacy_blur(frame.image, result.raw, cfg), cfg.jpeg_quality)
            out.verified = self.verifier.check(frame.camera_id, at, result.present, jpeg, watched=watched)
            if out.verified or out.posted or out.retried:
                self._watch.pop(frame.camera_id, None)  # the ledger changed: read it again
        return out

    def photo(self, frame: Frame, location: Location | None = None, detections=None) -> IntakeResult:
        result = self.engine.process_photo(frame, location, detections)
        out = IntakeResult(result)
        out.retried, out.posted = self._post(result.reports)
        return out

    def flush(self) -> list[PostResult]:
        retried, posted = self._post(self.engine.flush())
        return [p for _, p in retried] + posted

    def _post(self, reports: list[IncidentReport]) -> tuple[list[tuple[IncidentReport, PostResult]], list[PostResult]]:
        """Post the backlog, then `reports`, in order (a later report of an incident must land last)."""
        queue, n_old = self.backlog + list(reports), len(self.backlog)
        self.backlog = []
        done: list[PostResult | None] = []
        for i, report in enumerate(queue):
            try:
                done.append(self.store.post_incident(report))
            except LedgerError as e:
                log.error("incident %s refused by the ledger, dropped: %s", report.incident_id, e)
                if i >= n_old:  # this call's own report: the caller must hear why; the rest wait in the backlog
                    self.backlog = queue[i + 1 :]
                    raise
                done.append(None)
            except Exception:
                self.backlog = queue[i:]
                raise
        return [(r, p) for r, p in zip(queue[:n_old], done[:n_old]) if p is not None], done[n_old:]

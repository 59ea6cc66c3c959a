"""The one ledger writer: every worker's messages, in order per unit, into the case ledger.

Reports of a unit are held (they are small; their evidence goes into the evidence store at once) and posted
together with the unit's next `Checkpoint`, in one transaction: the progress recorded is always that of the
cases in the ledger. Auto-verification runs here, on each frame of a camera with dispatched cases, after that
camera's reports up to the frame are posted (a verification must see the cases as they were at that frame).
"""

from __future__ import annotations

import logging

from ..cases import AutoVerifier, CaseStore, LedgerError
from ..domain import IncidentReport
from .units import PATROL
from ..live.intake import DispatchedCases
from .messages import Checkpoint, FrameOut, Message, Problem, UnitDone, UnitFailed
from .progress import ProgressBook


log = logging.getLogger(__name__)


class LedgerWriter:
    def __init__(self, store: CaseStore, verifier: AutoVerifier | None, book: ProgressBook, summary) -> None:
        self.store = store
        self.verifier = verifier
        self.book = book
        self.summary = summary
        self.pending: dict[str, list[tuple[IncidentReport, str]]] = {}
        self.finished: set[str] = set()
        self._watch = DispatchedCases(store)

    def handle(self, msg: Message) -> None:
        if isinstance(msg, FrameOut):
            for sha, data in msg.evidence.items():
                if self.store.evidence.stored(sha) is None:
                    self.store.evidence.put_bytes(data, sha)
            self.pending.setdefault(msg.unit, []).extend((r, msg.source) for r in msg.reports)
            if msg.verify is not None and self.verifier is not None:
                posted = self._commit(msg.unit)
                v = msg.verify
                watched = self._watch.of(v.camera_id, v.at, reused=v.reused and not posted)  # reports just posted: read again
                actions = self.verifier.check(v.camera_id, v.at, v.present, v.jpeg, watched=watched)
                if actions:
                    self._watch.forget(v.camera_id)  # the ledger changed: read it again
                self.summary.auto_verified += sum(a.action == "verified" for a in actions)
                self.summary.escalated += sum(a.action == "escalated" for a in actions)
        elif isinstance(msg, Checkpoint):
            self._commit(msg.unit, msg)
            self._summarize(msg)
        elif isinstance(msg, Problem):
            self.summary.fail(msg.path, msg.error)
        elif isinstance(msg, UnitDone):
            self._commit(msg.unit)
            self.finished.add(msg.unit)
        elif isinstance(msg, UnitFailed):
            self._commit(msg.unit)  # what it reported before failing still counts; its progress stays where it was
            self.finished.add(msg.unit)
            log.error("unit %s failed: %s", msg.unit, msg.error)
            self.summary.fail(msg.unit, f"worker failed: {msg.error.strip().splitlines()[-1]}")

    def _summarize(self, msg: Checkpoint) -> None:
        """A posted checkpoint into the night's summary: counts, frame times, and the files read or failed."""
        s = self.summary
        s.add_counts(msg.counts)
        camera_id = None if msg.unit == PATROL else msg.unit
        if msg.seen is not None:
            s.saw_span(msg.unit, *msg.seen)
        s.read.extend({"path": p, "camera_id": camera_id, "frames": 1} for p in msg.read)
        if msg.kind != "video":
            return
        if msg.status == "failed":
            extra = {"frames_read": msg.frames_read} if msg.frames_read is not None else {}
            s.fail(msg.source, msg.error or "failed", "partial" if msg.used else "failed", camera_id=camera_id, **extra, frames_used=msg.used)
        elif msg.status == "done":
            s.read.append({"path": msg.source, "camera_id": camera_id, "frames": msg.used})

    def _commit(self, unit: str, ckpt: Checkpoint | None = None) -> bool:
        """Post the unit's held reports (with `ckpt`'s progress); True if there were any."""
        pending = self.pending.pop(unit, [])
        if not pending and ckpt is None:
            return False
        results = self.store.post_incidents([r for r, _ in pending], also=(lambda s: self.book.record(s, ckpt)) if ckpt is not None else None)
        for (report, source), res in zip(pending, results):
            if isinstance(res, LedgerError):
                log.error("incident %s refused by the ledger, dropped: %s", report.incident_id, res)
                self.summary.fail(source or unit, f"ledger refused an incident: {res}")
            else:
                self.summary.add_posted([res])
        return bool(pending)

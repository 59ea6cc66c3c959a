"""The case store: the rectification ledger's one entry point, in front of its three parts.

`posting` (incidents in, cases out), `workflow` (transitions and escalation) and `queries` (reads, with the one
`CaseFilter`) each do one job and document it; `CaseStore` opens the database and the evidence store once,
shares them and the clock with the parts, and gives callers one object with every method.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from ..db.engine import Database
from ..domain import IncidentReport
from .clock import Clock, utcnow
from .config import LedgerConfig
from .errors import LedgerError
from .evidence_store import EvidenceStore
from .lifecycle import CaseStatus
from .posting import CasePosting
from .queries import CaseFilter, CaseQueries, WatchedCase
from .views import CaseView, PostResult
from .workflow import CaseWorkflow, Step


class CaseStore:
    """The rectification ledger (整改台账). All times are injected or come from `clock`, never read ad hoc."""

    def __init__(self, db: Database, evidence: EvidenceStore, config: LedgerConfig, *, clock: Clock = utcnow):
        self.db = db
        self.evidence = evidence
        self.config = config
        self.clock = clock
        self._queries = CaseQueries(db)
        self._workflow = CaseWorkflow(db, evidence, config, clock)
        self._posting = CasePosting(db, evidence, config, clock, self._workflow)

    @classmethod
    def open(cls, config: LedgerConfig, *, clock: Clock = utcnow) -> CaseStore:
        return cls(Database(config.database_url, auto_upgrade=config.auto_upgrade), EvidenceStore(config.evidence_dir), config, clock=clock)

    def close(self) -> None:
        self.db.dispose()

    # ---- posting (see `posting`) ----------------------------------------------------------------------

    def post_incident(self, report: IncidentReport, *, at: datetime | None = None) -> PostResult:
        """Fold one incident into the ledger. Safe to repeat."""
        return self._posting.post_incident(report, at=at)

    def post_incidents(
        self,
        reports: Sequence[IncidentReport],
        *,
        at: datetime | None = None,
        blobs: Mapping[str, bytes] | None = None,
        also: Callable[[Session], None] | None = None,
    ) -> list[PostResult | LedgerError]:
        """Several reports, and `also`, in ONE transaction; a refused report comes back as its `LedgerError`."""
        return self._posting.post_incidents(reports, at=at, blobs=blobs, also=also)

    # ---- workflow (see `workflow`) --------------------------------------------------------------------

    def transition(
        self,
        case_id: int,
        to: CaseStatus | str,
        *,
        actor: str,
        note: str | None = None,
        after_photo: bytes | str | Path | None = None,
        owner: str | None = None,
        at: datetime | None = None,
        source: str = "api",
    ) -> CaseView:
        """Move a case along the workflow, or raise InvalidTransition saying why not and what is allowed."""
        return self._workflow.transition(case_id, to, actor=actor, note=note, after_photo=after_photo, owner=owner, at=at, source=source)

    def transitions(self, case_id: int, steps: Sequence[Step], *, actor: str, at: datetime | None = None, source: str = "api") -> CaseView:
        """Several moves in one transaction, all or none."""
        return self._workflow.transitions(case_id, steps, actor=actor, at=at, source=source)

    def escalate(self, case_id: int, *, actor: str, note: str, at: datetime | None = None) -> CaseView:
        """Flag an overdue dispatched case for the next level up; it stays dispatched."""
        return self._workflow.escalate(case_id, actor=actor, note=note, at=at)

    # ---- queries (see `queries`) ----------------------------------------------------------------------

    def get(self, case_id: int) -> CaseView:
        return self._queries.get(case_id)

    def list(self, where: CaseFilter | None = None, /, *, limit: int | None = None, offset: int = 0, **fields: Any) -> list[CaseView]:
        """Cases matching `where` (or the `CaseFilter` fields given as keywords), oldest first."""
        return self._queries.list(CaseFilter.of(where, fields), limit=limit, offset=offset)

    def count(self, where: CaseFilter | None = None, /, **fields: Any) -> int:
        """How many cases `list` with the same filter would give without a limit (for paging)."""
        return self._queries.count(CaseFilter.of(where, fields))

    def districts(self, where: CaseFilter | None = None, /, **fields: Any) -> list[str]:
        """The districts that have cases matching the filter, sorted."""
        return self._queries.districts(CaseFilter.of(where, fields))

    def reviewed(self) -> list[CaseView]:
        """Cases with a review decision or an annotation, oldest first: the samples feed."""
        return self._queries.reviewed()

    def overdue(self, now: datetime, *, limit: int | None = None, offset: int = 0) -> list[CaseView]:
        """Dispatched cases past their deadline at `now`, most overdue first."""
        return self._queries.overdue(now, limit=limit, offset=offset)

    def overdue_count(self, now: datetime) -> int:
        return self._queries.overdue_count(now)

    def case_for_incident(self, incident_id: str) -> int | None:
        return self._queries.case_for_incident(incident_id)

    def camera_watch(self, camera_id: str) -> list[WatchedCase]:
        """Dispatched cases seen by `camera_id` with a box on its frame: the auto-verifier's work list."""
        return self._queries.camera_watch(camera_id)

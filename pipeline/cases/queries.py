"""Reading the ledger: one case, filtered and paged lists, and the work lists of review, samples and verification.

Every read runs in its own short transaction and hands out detached `CaseView` snapshots (or plain values),
never rows bound to a session. `CaseFilter` is the one filter that `list`, `count` and `districts` share.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import selectinload

from ..db.engine import Database
from ..db.tables.annotations import Annotation
from ..db.tables.ledger import Case, CaseEvent, CaseIncident
from ..domain import ViolationType
from .clock import aware
from .errors import CaseNotFound
from .lifecycle import AWAITING, REVIEW_DECISIONS, CaseStatus, parse_status
from .views import CaseView


@dataclass(frozen=True)
class CaseFilter:
    """Which cases: every given field must match; None matches anything. `status` may be several."""

    status: CaseStatus | str | Sequence[CaseStatus | str] | None = None
    type: ViolationType | None = None
    district: str | None = None
    point: str | None = None
    camera_id: str | None = None

    @classmethod
    def of(cls, where: CaseFilter | None, fields: Mapping[str, Any]) -> CaseFilter:
        """`where`, or a filter from keyword fields (`store.list(status="rejected")`); not both."""
        if where is not None and fields:
            raise TypeError(f"give a CaseFilter or filter keywords ({', '.join(fields)}), not both")
        return where if where is not None else cls(**fields)

    def apply(self, q: Select) -> Select:
        """`q` narrowed to the matching cases (an unknown status name raises LedgerError)."""
        if self.status is not None:
            statuses = [self.status] if isinstance(self.status, str | CaseStatus) else list(self.status)
            q = q.where(Case.status.in_([(parse_status(s) if isinstance(s, str) else s).value for s in statuses]))
        for column, value in ((Case.type, self.type), (Case.district, self.district), (Case.point, self.point), (Case.camera_id, self.camera_id)):
            if value is not None:
                q = q.where(column == value)
        return q


@dataclass(frozen=True)
class WatchedCase:
    """What auto-verification needs to re-check one dispatched camera case."""

    id: int
    type: ViolationType
    box: tuple[float, float, float, float]
    dispatched_at: datetime
    deadline_at: datetime
    escalated_at: datetime | None


class CaseQueries:
    """The ledger's reads."""

    def __init__(self, db: Database):
        self.db = db

    def _views(self, q: Select) -> list[CaseView]:
        q = q.options(selectinload(Case.incidents), selectinload(Case.events), selectinload(Case.evidence))
        with self.db.transaction() as s:
            return [CaseView.of(c) for c in s.scalars(q)]

    def get(self, case_id: int) -> CaseView:
        found = self._views(select(Case).where(Case.id == case_id))
        if not found:
            raise CaseNotFound(case_id)
        return found[0]

    def list(self, where: CaseFilter, *, limit: int | None = None, offset: int = 0) -> list[CaseView]:
        """Cases matching `where`, oldest first. `status="rejected"` is the retraining feed."""
        q = where.apply(select(Case).order_by(Case.id))
        if offset:
            q = q.offset(offset)
        if limit is not None:
            q = q.limit(limit)
        return self._views(q)

    def count(self, where: CaseFilter) -> int:
        """How many cases `list` with the same filter would give without a limit (for paging)."""
        with self.db.transaction() as s:
            return s.scalar(where.apply(select(func.count()).select_from(Case))) or 0

    def districts(self, where: CaseFilter) -> list[str]:
        """The districts that have cases matching the filter, sorted (the review page's district filter)."""
        with self.db.transaction() as s:
            return sorted(s.scalars(where.apply(select(Case.district).distinct())))

    def reviewed(self) -> list[CaseView]:
        """Cases with a review decision (dispatched or rejected out of awaiting review) or an annotation, oldest
        first: the samples feed, chosen by the database rather than by reading the whole ledger."""
        decided = select(CaseEvent.case_id).where(
            CaseEvent.kind == "transition", CaseEvent.from_status.in_([st.value for st in AWAITING]), CaseEvent.to_status.in_([st.value for st in REVIEW_DECISIONS])
        )
        q = select(Case).where(or_(Case.id.in_(decided), Case.id.in_(select(Annotation.case_id)))).order_by(Case.id)
        return self._views(q)

    def overdue(self, now: datetime, *, limit: int | None = None, offset: int = 0) -> list[CaseView]:
        """Dispatched cases past their deadline at `now`, most overdue first."""
        now = aware(now, "now")
        q = select(Case).where(Case.status == CaseStatus.DISPATCHED.value, Case.deadline_at < now).order_by(Case.deadline_at, Case.id)
        if offset:
            q = q.offset(offset)
        if limit is not None:
            q = q.limit(limit)
        return self._views(q)

    def overdue_count(self, now: datetime) -> int:
        now = aware(now, "now")
        with self.db.transaction() as s:
            return s.scalar(select(func.count()).select_from(Case).where(Case.status == CaseStatus.DISPATCHED.value, Case.deadline_at < now)) or 0

    def case_for_incident(self, incident_id: str) -> int | None:
        with self.db.transaction() as s:
            return s.scalar(select(CaseIncident.case_id).where(CaseIncident.incident_id == incident_id))

    def camera_watch(self, camera_id: str) -> list[WatchedCase]:
        """Dispatched cases seen by `camera_id` with a box on its frame: the auto-verifier's work list."""
        q = select(Case).where(Case.camera_id == camera_id, Case.status == CaseStatus.DISPATCHED.value, Case.box.is_not(None)).order_by(Case.id)
        with self.db.transaction() as s:
            return [WatchedCase(c.id, c.type, tuple(c.box), c.dispatched_at, c.deadline_at, c.escalated_at) for c in s.scalars(q) if c.box]

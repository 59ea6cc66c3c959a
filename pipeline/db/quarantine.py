"""Incident reports the ledger refused, kept with the reason instead of blocking the reports behind them.

A report is quarantined when posting it fails for a reason that a retry cannot fix (invalid data, a value the
database refuses such as a NUL byte on PostgreSQL). An admin lists them (`streetorder cases quarantine list`,
`GET /quarantine`), and after fixing the cause re-posts one (`... retry ID`) or drops it (`... drop ID`).
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from ..domain import IncidentReport
from .engine import Database
from .tables.intake import QuarantinedReport


class NotQuarantined(ValueError):
    """No quarantined report has this id. A ValueError, as the ledger's input errors are, so the command line
    prints it as a plain error."""

    def __init__(self, quarantine_id: int):
        super().__init__(f"no quarantined report with id {quarantine_id}")


class QuarantineView(BaseModel):
    """One quarantined report as the admin sees it."""

    model_config = ConfigDict(frozen=True)

    id: int
    incident_id: str
    camera_id: str | None
    error_type: str = Field(description="The exception the ledger raised")
    reason: str = Field(description="Why the ledger refused the report")
    queued_at: datetime
    quarantined_at: datetime
    payload: str = Field(description="The report as JSON, as it was queued")


def _view(row: QuarantinedReport) -> QuarantineView:
    return QuarantineView(
        id=row.id, incident_id=row.incident_id, camera_id=row.camera_id, error_type=row.error_type, reason=row.reason,
        queued_at=row.queued_at, quarantined_at=row.quarantined_at, payload=row.payload,
    )


def quarantine(db: Database, payload: str, incident_id: str, camera_id: str | None, error: BaseException, queued_at: datetime) -> int:
    """Keep a refused report; returns its quarantine id. The reason is the first lines of the error."""
    reason = "\n".join(str(error).splitlines()[:5])[:2000] or type(error).__name__
    # text columns cannot hold NUL on PostgreSQL, and the refused payload may be exactly that
    row = QuarantinedReport(
        incident_id=incident_id.replace("\x00", "\\u0000")[:200], camera_id=camera_id.replace("\x00", "\\u0000") if camera_id else None,
        payload=payload.replace("\x00", "\\u0000"), error_type=type(error).__name__[:100], reason=reason.replace("\x00", "\\u0000"),
        queued_at=queued_at, quarantined_at=datetime.now(UTC),
    )
    with db.transaction() as s:
        s.add(row)
        s.flush()
        return row.id


def quarantined(db: Database, *, limit: int = 200, offset: int = 0) -> list[QuarantineView]:
    """Oldest first."""
    with db.transaction() as s:
        return [_view(r) for r in s.scalars(select(QuarantinedReport).order_by(QuarantinedReport.id).offset(offset).limit(limit))]


def quarantine_count(db: Database) -> int:
    with db.transaction() as s:
        return s.scalar(select(func.count()).select_from(QuarantinedReport)) or 0


def get_quarantined(db: Database, quarantine_id: int) -> QuarantineView:
    with db.transaction() as s:
        row = s.get(QuarantinedReport, quarantine_id)
        if row is None:
            raise NotQuarantined(quarantine_id)
        return _view(row)


def release(db: Database, quarantine_id: int) -> None:
    """Remove one entry (after it was re-posted, or to drop it)."""
    with db.transaction() as s:
        row = s.get(QuarantinedReport, quarantine_id)
        if row is None:
            raise NotQuarantined(quarantine_id)
        s.delete(row)


def report_of(view: QuarantineView) -> IncidentReport:
    """The quarantined report, validated again (a retry after the cause was fixed)."""
    return IncidentReport.model_validate_json(view.payload)

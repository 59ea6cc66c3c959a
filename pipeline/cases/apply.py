"""Report fields onto ledger rows: the one mapping from an `IncidentReport` to `Case` and `CaseIncident` columns.

Adding a field to the report is one edit here: its column value in `report_columns`, and a rule in `_CASE`
and/or `_INCIDENT` for the rows that store it (the columns themselves go in `pipeline.db.tables.ledger` and a migration).
`tests/cases/test_apply.py` fails for a report field that reaches no row.
Evidence files are not columns: `posting` stores them first and `attach` references them from the case.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..db.tables.ledger import Case, CaseIncident, location_columns
from ..domain import IncidentReport

Rule = Callable[[Any, Any], Any]
"""How a row combines the value it has with a later report's: (old, new) -> value to keep."""


def _keep(old: Any, new: Any) -> Any:
    return old


def _latest(old: Any, new: Any) -> Any:
    return new


def _first_given(old: Any, new: Any) -> Any:
    return old or new


def _known(old: Any, new: Any) -> Any:
    return old if old is not None else new


# A case widens with every report folded into it: earliest first sighting, latest last, worst severity and
# count, and what it did not know yet. Monotone, so re-posting anything already absorbed changes nothing.
# camera_id, zone_id and box move together: see `_adopt_camera`.
_CASE: dict[str, Rule] = {
    "type": _keep,
    "source": _keep,
    "camera_id": _keep,
    "zone_id": _keep,
    "box": _keep,
    "district": _keep,
    "street": _keep,
    "point": _keep,
    "lat": _known,
    "lon": _known,
    "owner": _first_given,
    "first_seen": min,
    "last_seen": max,
    "severity": max,
    "count": max,
    "score": max,
}

# An incident's latest report is its truth, except for what identifies it.
_INCIDENT: dict[str, Rule] = {
    "incident_id": _keep,
    "source": _keep,
    "camera_id": _latest,
    "zone_id": _latest,
    "box": _latest,
    "first_seen": _latest,
    "last_seen": _latest,
    "ended": _latest,
    "severity": _latest,
    "count": _latest,
    "score": _latest,
}


def report_columns(report: IncidentReport) -> dict[str, Any]:
    """The report's fields as ledger column values (what `_CASE` and `_INCIDENT` pick from)."""
    return {
        "incident_id": report.incident_id,
        "type": report.type,
        "source": report.source,
        "camera_id": report.camera_id,
        "zone_id": report.zone_id,
        **location_columns(report.location),
        "owner": report.owner,
        "first_seen": report.first_seen,
        "last_seen": report.last_seen,
        "ended": report.ended,
        "severity": report.severity,
        "count": report.count,
        "score": report.score,
        "box": list(report.box) if report.box else None,
    }


def apply_report(row: Case | CaseIncident, report: IncidentReport, *, create: bool) -> bool:
    """Copy `report` onto a case or incident row; returns whether any column changed.

    create=True: the row is new and takes every value it stores. create=False: an existing row combines its
    values with the report's by the row's rules (`_CASE`, `_INCIDENT`).
    """
    rules = _CASE if isinstance(row, Case) else _INCIDENT
    values = report_columns(report)
    new = {k: values[k] if create else rule(getattr(row, k), values[k]) for k, rule in rules.items()}
    if not create and isinstance(row, Case):
        new.update(_adopt_camera(row, report, values))
    changed = False
    for k, v in new.items():
        if create or getattr(row, k) != v:
            setattr(row, k, v)
            changed = True
    return changed


def _adopt_camera(case: Case, report: IncidentReport, values: dict[str, Any]) -> dict[str, Any]:
    """A patrol case now watched by a camera takes the camera's view (the box auto-verification re-checks)."""
    if case.camera_id is None and report.camera_id is not None and report.box is not None:
        return {k: values[k] for k in ("camera_id", "zone_id", "box")}
    return {}

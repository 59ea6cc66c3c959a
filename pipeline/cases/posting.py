"""Posting: incidents in, cases out, every change in one transaction with its history and outbox rows.

Posting rules, in order (all inside one transaction, serialized per violation type):
1. A known `incident_id` updates its own case, whatever the case's status: a retry or a batch re-run
   never creates or reopens anything, and an exact re-post writes nothing.
2. Otherwise an OPEN case (detected, dispatched, rectified, reopened) of the same type at the same spot
   absorbs the incident (two cameras at one point, a vendor who came back before rectification).
3. Otherwise a resolved (verified or closed) case of the same type at the same spot:
   - the incident was last seen before the case was resolved: it is old footage, attached as is;
   - it was first seen within `relapse_days` of resolution: the case relapses to `reopened` (反弹).
4. Otherwise a new case is opened as `detected`.
"Same spot" is the same district and point (点位), or GPS within `same_spot_radius_m`.
Evidence files are copied into the evidence store before the transaction; if the transaction then fails,
they are unreferenced and `gc` removes them after its grace period.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, text
from sqlalchemy.orm import Session

from ..db.engine import Database
from ..db.tables.ledger import Case, CaseEvent, CaseIncident
from ..domain import IncidentReport
from ..geometry import haversine_m
from .apply import apply_report
from .attach import Stored, attach_evidence
from .clock import Clock, aware, resolve
from .config import LedgerConfig
from .errors import LedgerError
from .evidence_store import EvidenceStore
from .lifecycle import OPEN_STATUSES, RESOLVED_STATUSES, CaseStatus
from .outbox import enqueue
from .views import PostResult
from .workflow import CaseWorkflow

_RELAPSE_ACTOR = "relapse-rule"


class CasePosting:
    """Folds incident reports into the ledger. A relapse is a workflow move, so it goes through `workflow`."""

    def __init__(self, db: Database, evidence: EvidenceStore, config: LedgerConfig, clock: Clock, workflow: CaseWorkflow):
        self.db = db
        self.evidence = evidence
        self.config = config
        self.clock = clock
        self.workflow = workflow

    def post_incident(self, report: IncidentReport, *, at: datetime | None = None) -> PostResult:
        """Fold one incident into the ledger (see the module docstring for the rules). Safe to repeat."""
        at = resolve(self.clock, at)
        self._validate(report)
        stored = self._store_evidence(report)
        with self.db.transaction() as s:
            self._lock_types(s, [report.type])
            return self._post(s, report, stored, at)

    def post_incidents(
        self,
        reports: Sequence[IncidentReport],
        *,
        at: datetime | None = None,
        blobs: Mapping[str, bytes] | None = None,
        also: Callable[[Session], None] | None = None,
    ) -> list[PostResult | LedgerError]:
        """Several reports, and `also` (the night job records its progress there), in ONE transaction.

        Why: a job that records how far it got must record it together with the cases that far, or a crash
        in between loses or repeats work. A report the ledger refuses comes back as its `LedgerError`, in its
        place, rolled back alone (a savepoint); the others and `also` still commit. `blobs` holds evidence
        content by sha256, for reports made on another machine whose `path`s mean nothing here.
        """
        at = resolve(self.clock, at)
        prepared: list[list | LedgerError] = []
        for report in reports:
            try:
                self._validate(report)
                prepared.append(self._store_evidence(report, blobs))
            except LedgerError as e:
                prepared.append(e)
        out: list[PostResult | LedgerError] = []
        with self.db.transaction() as s:
            self._lock_types(s, [r.type for r, p in zip(reports, prepared) if not isinstance(p, LedgerError)])
            for report, stored in zip(reports, prepared):
                if isinstance(stored, LedgerError):
                    out.append(stored)
                    continue
                try:
                    with s.begin_nested():
                        out.append(self._post(s, report, stored, at))
                except LedgerError as e:
                    out.append(e)
            if also is not None:
                also(s)
        return out

    def _validate(self, report: IncidentReport) -> None:
        aware(report.first_seen, "first_seen")
        aware(report.last_seen, "last_seen")
        for ev in report.evidence:
            aware(ev.taken_at, f"evidence {ev.path} taken_at")
        if report.last_seen < report.first_seen:
            raise LedgerError(f"incident {report.incident_id}: last_seen {report.last_seen.isoformat()} is before first_seen {report.first_seen.isoformat()}")
        if report.box is not None:
            x1, y1, x2, y2 = report.box
            if not (x2 > x1 and y2 > y1):
                raise LedgerError(f"incident {report.incident_id}: box {report.box} is not xyxy with x2 > x1 and y2 > y1")

    def _store_evidence(self, report: IncidentReport, blobs: Mapping[str, bytes] | None = None) -> list[Stored]:
        """Copy the report's evidence into the store before the transaction (see the module docstring)."""
        blobs = blobs or {}
        # content already stored is not read again: a retry still works after the engine cleaned up its files
        return [
            (ev.kind, ev.taken_at, self.evidence.stored(ev.sha256) or (self.evidence.put_bytes(blobs[ev.sha256], ev.sha256) if ev.sha256 in blobs else self.evidence.put_file(ev.path, ev.sha256)))
            for ev in report.evidence
        ]

    def _lock_types(self, s: Session, types: Sequence[str]) -> None:
        """On PostgreSQL, serialize posts of one type, so two can't both open a case at one spot. Several types
        are locked in sorted order, so two multi-type posters never wait on each other in a cycle."""
        if self.db.dialect == "postgresql":
            for t in sorted(set(types)):
                s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": zlib.crc32(f"streetorder.post.{t}".encode())})

    def _post(self, s: Session, report: IncidentReport, stored: list[Stored], at: datetime) -> PostResult:
        actor = "engine" if report.source == "camera" else "patrol"
        known = s.execute(select(CaseIncident).where(CaseIncident.incident_id == report.incident_id).with_for_update()).scalar_one_or_none()
        if known is not None:
            case = s.get(Case, known.case_id, with_for_update=True)
            if case.type != report.type:
                raise LedgerError(f"incident {report.incident_id} belongs to case {case.id} of type {case.type}, not {report.type}")
            changed = apply_report(known, report, create=False) | apply_report(case, report, create=False) | attach_evidence(case, stored, report.incident_id, at)
            if changed:
                case.revision += 1
                case.updated_at = at
            return PostResult(case_id=case.id, created=False, reopened=False, merged=False, changed=changed, status=case.status)

        case = self._at_spot(s, report, OPEN_STATUSES)
        if case is not None:
            self._fold(s, case, report, stored, at, actor, f"incident {report.incident_id} joined this open case at {report.location.point}")
            return PostResult(case_id=case.id, created=False, reopened=False, merged=True, changed=True, status=case.status)

        case = self._at_spot(s, report, RESOLVED_STATUSES, newest_resolved=True)
        if case is not None:
            resolved_at = case.closed_at if case.status == CaseStatus.CLOSED else case.verified_at
            if report.last_seen <= resolved_at:
                self._fold(s, case, report, stored, at, actor, f"incident {report.incident_id} was seen before this case was resolved")
                return PostResult(case_id=case.id, created=False, reopened=False, merged=True, changed=True, status=case.status)
            if report.first_seen <= resolved_at + timedelta(days=self.config.relapse_days):
                days = max((report.first_seen - resolved_at).total_seconds(), 0) / 86400
                case.incidents.append(_new_incident(report, at))
                apply_report(case, report, create=False)
                attach_evidence(case, stored, report.incident_id, at)
                note = f"violation back at {report.location.point} {days:.1f} days after the case was {case.status} (incident {report.incident_id})"
                self.workflow.apply(s, case, CaseStatus.REOPENED, _RELAPSE_ACTOR, note, None, None, at, kind="relapse", incident_id=report.incident_id)
                return PostResult(case_id=case.id, created=False, reopened=True, merged=False, changed=True, status=case.status)

        case = self._create(s, report, stored, at, actor)
        return PostResult(case_id=case.id, created=True, reopened=False, merged=False, changed=True, status=case.status)

    def _create(self, s: Session, report: IncidentReport, stored: list[Stored], at: datetime, actor: str) -> Case:
        case = Case(
            status=CaseStatus.DETECTED.value,
            created_at=at,
            updated_at=at,
            relapse_count=0,
            escalation_count=0,
            revision=1,
            incidents=[_new_incident(report, at)],
            events=[],
            evidence=[],
        )
        apply_report(case, report, create=True)
        s.add(case)
        attach_evidence(case, stored, report.incident_id, at)
        event = CaseEvent(kind="created", from_status=None, to_status=CaseStatus.DETECTED.value, actor=actor, at=at, incident_id=report.incident_id, note=f"{report.source} incident {report.incident_id}")
        case.events.append(event)
        s.flush()
        enqueue(s, case, event, self.config)
        return case

    def _fold(self, s: Session, case: Case, report: IncidentReport, stored: list[Stored], at: datetime, actor: str, note: str) -> None:
        """Attach a new incident to an existing case without changing its status."""
        case.incidents.append(_new_incident(report, at))
        apply_report(case, report, create=False)
        attach_evidence(case, stored, report.incident_id, at)
        case.revision += 1
        case.updated_at = at
        case.events.append(CaseEvent(kind="merged", from_status=case.status, to_status=case.status, actor=actor, at=at, note=note, incident_id=report.incident_id))

    def _at_spot(self, s: Session, report: IncidentReport, statuses: frozenset[CaseStatus], *, newest_resolved: bool = False) -> Case | None:
        loc = report.location
        same_point = and_(Case.district == loc.district, Case.point == loc.point)
        spot = same_point
        r = self.config.same_spot_radius_m
        if loc.gps is not None and r > 0:
            dlat = r / 111_320 + 1e-9
            dlon = r / (111_320 * max(math.cos(math.radians(loc.gps.lat)), 1e-6)) + 1e-9
            near = and_(Case.lat.between(loc.gps.lat - dlat, loc.gps.lat + dlat), Case.lon.between(loc.gps.lon - dlon, loc.gps.lon + dlon))
            spot = or_(same_point, near)
        q = select(Case).where(Case.type == report.type, Case.status.in_([st.value for st in statuses]), spot).order_by(Case.id).with_for_update()
        found = [
            c
            for c in s.scalars(q)
            if (c.district == loc.district and c.point == loc.point)
            or (loc.gps is not None and c.lat is not None and c.lon is not None and haversine_m(loc.gps.lat, loc.gps.lon, c.lat, c.lon) <= r)
        ]
        if not found:
            return None
        if newest_resolved:
            return max(found, key=lambda c: c.closed_at if c.status == CaseStatus.CLOSED else c.verified_at)
        return found[0]


def _new_incident(report: IncidentReport, at: datetime) -> CaseIncident:
    inc = CaseIncident(posted_at=at)
    apply_report(inc, report, create=True)
    return inc

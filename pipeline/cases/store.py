"""The case store: incidents in, cases out, every change in one transaction with its history and outbox rows.

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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import and_, func, or_, select, text
from sqlalchemy.orm import Session, selectinload

from ..domain import IncidentReport, ViolationType
from ..geometry import haversine_m
from .apply import apply_report
from .config import LedgerConfig
from .db import Database
from .errors import CaseNotFound, InvalidTransition, LedgerError
from .evidence_store import EvidenceStore, StoredFile
from .lifecycle import AWAITING, OPEN_STATUSES, RESOLVED_STATUSES, REVIEW_DECISIONS, CaseStatus, parse_status, refusal
from .annotations import new_row
from .models import Annotation, Case, CaseEvent, CaseEvidence, CaseIncident
from .outbox import enqueue
from .views import CaseView, PostResult

Clock = Callable[[], datetime]
_RELAPSE_ACTOR = "relapse-rule"


def utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise LedgerError(f"{what} {value.isoformat()} has no time zone; give timezone-aware times (e.g. +08:00)")
    return value


@dataclass(frozen=True)
class Step:
    """One move of `CaseStore.transitions`."""

    to: CaseStatus | str
    note: str | None = None
    after_photo: bytes | str | Path | None = None
    owner: str | None = None


@dataclass(frozen=True)
class WatchedCase:
    """What auto-verification needs to re-check one dispatched camera case."""

    id: int
    type: ViolationType
    box: tuple[float, float, float, float]
    dispatched_at: datetime
    deadline_at: datetime
    escalated_at: datetime | None


class CaseStore:
    """The rectification ledger (整改台账). All times are injected or come from `clock`, never read ad hoc."""

    def __init__(self, db: Database, evidence: EvidenceStore, config: LedgerConfig, *, clock: Clock = utcnow):
        self.db = db
        self.evidence = evidence
        self.config = config
        self.clock = clock

    @classmethod
    def open(cls, config: LedgerConfig, *, clock: Clock = utcnow) -> CaseStore:
        return cls(Database(config.database_url, auto_upgrade=config.auto_upgrade), EvidenceStore(config.evidence_dir), config, clock=clock)

    def close(self) -> None:
        self.db.dispose()

    def _now(self, at: datetime | None) -> datetime:
        return (_aware(at, "time") if at is not None else _aware(self.clock(), "clock time")).astimezone(UTC)

    # ---- posting ------------------------------------------------------------------------------------

    def post_incident(self, report: IncidentReport, *, at: datetime | None = None) -> PostResult:
        """Fold one incident into the ledger (see the module docstring for the rules). Safe to repeat."""
        at = self._now(at)
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
        at = self._now(at)
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
        _aware(report.first_seen, "first_seen")
        _aware(report.last_seen, "last_seen")
        for ev in report.evidence:
            _aware(ev.taken_at, f"evidence {ev.path} taken_at")
        if report.last_seen < report.first_seen:
            raise LedgerError(f"incident {report.incident_id}: last_seen {report.last_seen.isoformat()} is before first_seen {report.first_seen.isoformat()}")
        if report.box is not None:
            x1, y1, x2, y2 = report.box
            if not (x2 > x1 and y2 > y1):
                raise LedgerError(f"incident {report.incident_id}: box {report.box} is not xyxy with x2 > x1 and y2 > y1")

    def _store_evidence(self, report: IncidentReport, blobs: Mapping[str, bytes] | None = None) -> list[tuple[str, datetime, StoredFile]]:
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

    def _post(self, s: Session, report: IncidentReport, stored: list[tuple[str, datetime, StoredFile]], at: datetime) -> PostResult:
        actor = "engine" if report.source == "camera" else "patrol"
        known = s.execute(select(CaseIncident).where(CaseIncident.incident_id == report.incident_id).with_for_update()).scalar_one_or_none()
        if known is not None:
            case = s.get(Case, known.case_id, with_for_update=True)
            if case.type != report.type:
                raise LedgerError(f"incident {report.incident_id} belongs to case {case.id} of type {case.type}, not {report.type}")
            changed = apply_report(known, report, create=False) | apply_report(case, report, create=False) | self._attach(case, stored, report.incident_id, at)
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
                self._attach(case, stored, report.incident_id, at)
                note = f"violation back at {report.location.point} {days:.1f} days after the case was {case.status} (incident {report.incident_id})"
                self._apply(s, case, CaseStatus.REOPENED, _RELAPSE_ACTOR, note, None, None, at, kind="relapse", incident_id=report.incident_id)
                return PostResult(case_id=case.id, created=False, reopened=True, merged=False, changed=True, status=case.status)

        case = self._create(s, report, stored, at, actor)
        return PostResult(case_id=case.id, created=True, reopened=False, merged=False, changed=True, status=case.status)

    def _create(self, s: Session, report: IncidentReport, stored, at: datetime, actor: str) -> Case:
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
        self._attach(case, stored, report.incident_id, at)
        event = CaseEvent(kind="created", from_status=None, to_status=CaseStatus.DETECTED.value, actor=actor, at=at, incident_id=report.incident_id, note=f"{report.source} incident {report.incident_id}")
        case.events.append(event)
        s.flush()
        enqueue(s, case, event, self.config)
        return case

    def _fold(self, s: Session, case: Case, report: IncidentReport, stored, at: datetime, actor: str, note: str) -> None:
        """Attach a new incident to an existing case without changing its status."""
        case.incidents.append(_new_incident(report, at))
        apply_report(case, report, create=False)
        self._attach(case, stored, report.incident_id, at)
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

    def _attach(self, case: Case, stored: Sequence[tuple[str, datetime, StoredFile]], incident_id: str | None, at: datetime) -> bool:
        """Reference stored files from the case; an already referenced (sha, kind) is left alone."""
        have = {(e.sha256, e.kind): e for e in case.evidence}
        changed = False
        for kind, taken_at, f in stored:
            ref = have.get((f.sha256, kind))
            if ref is None:
                ref = CaseEvidence(sha256=f.sha256, kind=kind, taken_at=taken_at, size_bytes=f.size, incident_id=incident_id, added_at=at)
                case.evidence.append(ref)
                have[(f.sha256, kind)] = ref
                changed = True
            elif ref.purged_at is not None:  # the same file came back with a new report: reference it again
                ref.purged_at = None
                changed = True
        return changed

    # ---- lifecycle ----------------------------------------------------------------------------------

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
        """Move a case along the workflow, or raise InvalidTransition saying why not and what is allowed.

        `owner` (re)assigns the point owner on dispatch; `after_photo` (bytes or a file) is stored as `after`
        evidence on rectification; `note` is kept in the history (the reason, for a rejection). `source` (api,
        cli, review-page) goes into the annotation log with a review decision.
        """
        return self.transitions(case_id, [Step(to, note, after_photo, owner)], actor=actor, at=at, source=source)

    def transitions(self, case_id: int, steps: Sequence[Step], *, actor: str, at: datetime | None = None, source: str = "api") -> CaseView:
        """Several moves in one transaction, all or none: auto-verification's rectified → verified must not stop
        half-way, where no camera would ever look at the case again."""
        at = self._now(at)
        if not actor or not actor.strip():
            raise LedgerError("a transition needs an actor (who did it)")
        moves = []
        for step in steps:
            target = parse_status(step.to) if isinstance(step.to, str) else step.to
            note = step.note.strip() if step.note and step.note.strip() else None
            photo = None
            if step.after_photo is not None:
                if target is not CaseStatus.RECTIFIED:
                    raise LedgerError("an after photo belongs to a rectification (→ rectified)")
                photo = self.evidence.put_bytes(step.after_photo) if isinstance(step.after_photo, bytes) else self.evidence.put_file(step.after_photo)
            moves.append((target, note, photo, step.owner))
        with self.db.transaction() as s:
            case = self._locked(s, case_id)
            for target, note, photo, owner in moves:
                current = CaseStatus(case.status)
                why = refusal(current, target, has_owner=bool(owner or case.owner), has_note=note is not None, has_after_photo=photo is not None)
                if why:
                    raise InvalidTransition(case.id, current, target, why)
                self._check_order(s, case, at)
                self._apply(s, case, target, actor.strip(), note, owner, photo, at, source=source)
            return CaseView.of(case)

    def _apply(self, s: Session, case: Case, to: CaseStatus, actor: str, note: str | None, owner: str | None, photo: StoredFile | None, at: datetime, *, kind: str = "transition", incident_id: str | None = None, source: str = "api") -> CaseEvent:
        frm = case.status
        case.status = to.value
        case.updated_at = at
        case.revision += 1
        deadline = None
        if to is CaseStatus.DISPATCHED:
            if owner:
                case.owner = owner
            deadline = at + timedelta(hours=self.config.deadline_h(case.type))
            case.dispatched_at, case.deadline_at, case.escalated_at = at, deadline, None
        elif to is CaseStatus.RECTIFIED:
            case.rectified_at = at
            if photo is not None:
                self._attach(case, [("after", at, photo)], None, at)
        elif to is CaseStatus.VERIFIED:
            case.verified_at = at
        elif to is CaseStatus.CLOSED:
            case.closed_at = at
        elif to is CaseStatus.REJECTED:
            case.rejected_at = at
        elif to is CaseStatus.REOPENED:
            case.reopened_at, case.deadline_at, case.escalated_at = at, None, None
            case.relapse_count += 1
        event = CaseEvent(kind=kind, from_status=frm, to_status=to.value, actor=actor, at=at, note=note, incident_id=incident_id, deadline_at=deadline)
        case.events.append(event)
        s.flush()
        enqueue(s, case, event, self.config)
        if CaseStatus(frm) in AWAITING and to in REVIEW_DECISIONS:
            self._log_decision(s, case, event, source)
        return event

    def _log_decision(self, s: Session, case: Case, event: CaseEvent, source: str) -> None:
        """A review decision goes into the annotation log in its own transaction, whichever path took it (API,
        CLI, review page), with the frame it was taken on and the model that proposed that frame's boxes: the
        sample's provenance, whatever the case does later."""
        from .case_frames import case_frame  # reads the frame's metadata from the evidence store

        frame = case_frame(self, CaseView.of(case))
        s.add(new_row(
            case.id, action="dispatch" if event.to_status == CaseStatus.DISPATCHED else "reject", reviewer=event.actor, source=source,
            frame_sha256=frame.frame_sha256 if frame else None, model=frame.model if frame else None, event_id=event.id, note=event.note, at=event.at,
        ))
        s.flush()

    def escalate(self, case_id: int, *, actor: str, note: str, at: datetime | None = None) -> CaseView:
        """Flag an overdue dispatched case for the next level up; it stays dispatched (see lifecycle)."""
        at = self._now(at)
        with self.db.transaction() as s:
            case = self._locked(s, case_id)
            if case.status != CaseStatus.DISPATCHED:
                raise LedgerError(f"case {case_id} is '{case.status}'; only dispatched cases can be escalated")
            self._check_order(s, case, at)
            case.escalated_at = at
            case.escalation_count += 1
            case.revision += 1
            case.updated_at = at
            event = CaseEvent(kind="escalated", from_status=case.status, to_status=case.status, actor=actor, at=at, note=note)
            case.events.append(event)
            s.flush()
            enqueue(s, case, event, self.config)
            return CaseView.of(case)

    def _locked(self, s: Session, case_id: int) -> Case:
        case = s.get(Case, case_id, with_for_update=True)
        if case is None:
            raise CaseNotFound(case_id)
        return case

    def _check_order(self, s: Session, case: Case, at: datetime) -> None:
        last = s.scalar(select(func.max(CaseEvent.at)).where(CaseEvent.case_id == case.id))
        if last is not None and at < last:
            raise LedgerError(f"case {case.id}: time {at.isoformat()} is before its last recorded change at {last.isoformat()}; history only moves forward")

    # ---- queries ------------------------------------------------------------------------------------

    def _views(self, q) -> list[CaseView]:
        q = q.options(selectinload(Case.incidents), selectinload(Case.events), selectinload(Case.evidence))
        with self.db.transaction() as s:
            return [CaseView.of(c) for c in s.scalars(q)]

    def get(self, case_id: int) -> CaseView:
        found = self._views(select(Case).where(Case.id == case_id))
        if not found:
            raise CaseNotFound(case_id)
        return found[0]

    @staticmethod
    def _filtered(q, status, type, district, point, camera_id):
        if status is not None:
            statuses = [status] if isinstance(status, str | CaseStatus) else list(status)
            q = q.where(Case.status.in_([(parse_status(s) if isinstance(s, str) else s).value for s in statuses]))
        for column, value in ((Case.type, type), (Case.district, district), (Case.point, point), (Case.camera_id, camera_id)):
            if value is not None:
                q = q.where(column == value)
        return q

    def list(
        self,
        *,
        status: CaseStatus | str | Sequence[CaseStatus | str] | None = None,
        type: ViolationType | None = None,
        district: str | None = None,
        point: str | None = None,
        camera_id: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[CaseView]:
        """Cases matching every given filter (`status` may be several), oldest first. `status="rejected"` is
        the retraining feed."""
        q = self._filtered(select(Case).order_by(Case.id), status, type, district, point, camera_id)
        if offset:
            q = q.offset(offset)
        if limit is not None:
            q = q.limit(limit)
        return self._views(q)

    def count(
        self,
        *,
        status: CaseStatus | str | Sequence[CaseStatus | str] | None = None,
        type: ViolationType | None = None,
        district: str | None = None,
        point: str | None = None,
        camera_id: str | None = None,
    ) -> int:
        """How many cases `list` with the same filters would give without a limit (for paging)."""
        q = self._filtered(select(func.count()).select_from(Case), status, type, district, point, camera_id)
        with self.db.transaction() as s:
            return s.scalar(q) or 0

    def districts(self, *, status: CaseStatus | str | Sequence[CaseStatus | str] | None = None, type: ViolationType | None = None) -> list[str]:
        """The districts that have cases matching the filters, sorted (the review page's district filter)."""
        q = self._filtered(select(Case.district).distinct(), status, type, None, None, None)
        with self.db.transaction() as s:
            return sorted(s.scalars(q))

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
        now = _aware(now, "now")
        q = select(Case).where(Case.status == CaseStatus.DISPATCHED.value, Case.deadline_at < now).order_by(Case.deadline_at, Case.id)
        if offset:
            q = q.offset(offset)
        if limit is not None:
            q = q.limit(limit)
        return self._views(q)

    def overdue_count(self, now: datetime) -> int:
        now = _aware(now, "now")
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


def _new_incident(report: IncidentReport, at: datetime) -> CaseIncident:
    inc = CaseIncident(posted_at=at)
    apply_report(inc, report, create=True)
    return inc

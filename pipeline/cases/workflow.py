"""The workflow on stored cases: transitions (one or several, all or none) and escalation.

Every change bumps the case's revision and writes, in the same transaction, its history line and its outbox
rows; a review decision also goes into the annotation log. Which moves are allowed, and what each needs, is
`lifecycle`; this module only carries them out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..db.engine import Database
from ..db.tables.ledger import Case, CaseEvent
from .annotations import new_row
from .attach import attach_evidence
from .clock import Clock, resolve
from .config import LedgerConfig
from .errors import CaseNotFound, InvalidTransition, LedgerError
from .evidence_store import EvidenceStore, StoredFile
from .lifecycle import AWAITING, REVIEW_DECISIONS, CaseStatus, parse_status, refusal
from .outbox import enqueue
from .views import CaseView


@dataclass(frozen=True)
class Step:
    """One move of `CaseStore.transitions`."""

    to: CaseStatus | str
    note: str | None = None
    after_photo: bytes | str | Path | None = None
    owner: str | None = None


class CaseWorkflow:
    """Moves cases along the workflow. All times are injected or come from `clock`, never read ad hoc."""

    def __init__(self, db: Database, evidence: EvidenceStore, config: LedgerConfig, clock: Clock):
        self.db = db
        self.evidence = evidence
        self.config = config
        self.clock = clock

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
        at = resolve(self.clock, at)
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
                self.apply(s, case, target, actor.strip(), note, owner, photo, at, source=source)
            return CaseView.of(case)

    def apply(self, s: Session, case: Case, to: CaseStatus, actor: str, note: str | None, owner: str | None, photo: StoredFile | None, at: datetime, *, kind: str = "transition", incident_id: str | None = None, source: str = "api") -> CaseEvent:
        """Carry out one move already allowed, inside the caller's transaction (posting's relapse uses it too)."""
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
                attach_evidence(case, [("after", at, photo)], None, at)
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

        frame = case_frame(self, CaseView.of(case))  # it reads only `.evidence`, which the workflow shares with the store
        s.add(new_row(
            case.id, action="dispatch" if event.to_status == CaseStatus.DISPATCHED else "reject", reviewer=event.actor, source=source,
            frame_sha256=frame.frame_sha256 if frame else None, model=frame.model if frame else None, event_id=event.id, note=event.note, at=event.at,
        ))
        s.flush()

    def escalate(self, case_id: int, *, actor: str, note: str, at: datetime | None = None) -> CaseView:
        """Flag an overdue dispatched case for the next level up; it stays dispatched (see lifecycle)."""
        at = resolve(self.clock, at)
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

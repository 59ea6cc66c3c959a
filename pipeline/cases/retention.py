"""Retention: purge the evidence references of long-closed cases, then delete files nothing references.

The order is the guarantee: a file is only deleted once no case references it, so nothing a case
references is ever deleted. Purging is recorded in the case's history; the case row and its history stay.
Rejected cases are never purged: their evidence is retraining material.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from ..db.tables.ledger import Case, CaseEvent, CaseEvidence
from .evidence_store import GcResult
from .lifecycle import CaseStatus
from .store import CaseStore

ACTOR = "retention"


@dataclass(frozen=True)
class RetentionResult:
    purged_cases: tuple[int, ...]
    purged_refs: int
    gc: GcResult


def apply_retention(store: CaseStore, now: datetime, *, dry_run: bool = False) -> RetentionResult:
    cfg = store.config.retention
    purged_cases: list[int] = []
    refs = 0
    if cfg.closed_days is not None:
        cutoff = now - timedelta(days=cfg.closed_days)
        with store.db.transaction() as s:
            q = select(Case).where(Case.status == CaseStatus.CLOSED.value, Case.closed_at < cutoff).with_for_update()
            for case in s.scalars(q):
                live = [e for e in case.evidence if e.purged_at is None]
                if not live:
                    continue
                purged_cases.append(case.id)
                refs += len(live)
                if dry_run:
                    continue
                for e in live:
                    e.purged_at = now
                case.events.append(
                    CaseEvent(kind="evidence_purged", from_status=case.status, to_status=case.status, actor=ACTOR, at=now, note=f"{len(live)} evidence file reference(s) past {cfg.closed_days} days' retention")
                )
    with store.db.transaction() as s:
        q = select(CaseEvidence.sha256).where(CaseEvidence.purged_at.is_(None)).distinct()
        if dry_run and purged_cases:  # what a real run would keep once those references were purged
            q = q.where(CaseEvidence.case_id.not_in(purged_cases))
        keep = set(s.scalars(q))
    return RetentionResult(tuple(purged_cases), refs, store.evidence.gc(keep, grace_s=cfg.orphan_grace_s, dry_run=dry_run))

"""Stored evidence files referenced from a case: the one step that posting and a rectification's after photo share."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from ..db.tables.ledger import Case, CaseEvidence
from .evidence_store import StoredFile

Stored = tuple[str, datetime, StoredFile]
"""A file already in the evidence store, with its evidence kind and the time it was taken."""


def attach_evidence(case: Case, stored: Sequence[Stored], incident_id: str | None, at: datetime) -> bool:
    """Reference stored files from the case; an already referenced (sha, kind) is left alone. Returns whether
    the case's evidence changed."""
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

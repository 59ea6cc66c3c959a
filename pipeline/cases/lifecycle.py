"""The city workflow as data: statuses, the allowed moves between them, and what each move needs.

Main path: detected → dispatched (交办, to the point owner) → rectified (整改) → verified (核查) → closed.
Side paths:
- rejected: a reviewer marks a false positive (from detected, dispatched or reopened); it is final, and its
  evidence and reason feed retraining.
- rectified → dispatched: the check failed; the owner gets it back with a new deadline.
- reopened: the violation came back at the same spot after verification or closing (反弹). A reopened case
  goes back to the owner (→ dispatched) or is rejected. Every reopening counts as a relapse.

Escalation is deliberately not a status: an overdue case is still the owner's to rectify, so it stays
`dispatched` and carries an `escalated_at` flag plus a history entry. A status would have to copy every
move out of `dispatched`.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class CaseStatus(StrEnum):
    DETECTED = "detected"
    DISPATCHED = "dispatched"
    RECTIFIED = "rectified"
    VERIFIED = "verified"
    CLOSED = "closed"
    REJECTED = "rejected"
    REOPENED = "reopened"


S = CaseStatus

TRANSITIONS: Mapping[CaseStatus, frozenset[CaseStatus]] = {
    S.DETECTED: frozenset({S.DISPATCHED, S.REJECTED}),
    S.DISPATCHED: frozenset({S.RECTIFIED, S.REJECTED}),
    S.RECTIFIED: frozenset({S.VERIFIED, S.DISPATCHED}),
    S.VERIFIED: frozenset({S.CLOSED, S.REOPENED}),
    S.CLOSED: frozenset({S.REOPENED}),
    S.REOPENED: frozenset({S.DISPATCHED, S.REJECTED}),
    S.REJECTED: frozenset(),
}

# Open cases absorb new incidents at their spot (dedup); resolved ones can relapse; rejected ones are done.
OPEN_STATUSES: frozenset[CaseStatus] = frozenset({S.DETECTED, S.DISPATCHED, S.RECTIFIED, S.REOPENED})
RESOLVED_STATUSES: frozenset[CaseStatus] = frozenset({S.VERIFIED, S.CLOSED})
AWAITING: tuple[CaseStatus, ...] = (S.DETECTED, S.REOPENED)  # awaiting a reviewer's decision (the review page's queue)
REVIEW_DECISIONS: tuple[CaseStatus, ...] = (S.DISPATCHED, S.REJECTED)  # what a reviewer decides a case awaiting review is


def parse_status(value: str) -> CaseStatus:
    """A status from user input, or an error listing the valid ones."""
    try:
        return CaseStatus(value)
    except ValueError:
        raise ValueError(f"unknown status {value!r}; valid: {', '.join(s.value for s in CaseStatus)}") from None


def refusal(current: CaseStatus, target: CaseStatus, *, has_owner: bool, has_note: bool, has_after_photo: bool) -> str | None:
    """Why `current → target` is not allowed with what was given, or None if it is."""
    allowed = TRANSITIONS[current]
    if target not in allowed:
        if not allowed:
            return f"'{current}' is final"
        return f"from '{current}' the case can only move to: {', '.join(sorted(allowed))}"
    if target is S.DISPATCHED and not has_owner:
        return "dispatching needs a point owner (the case has none; pass one)"
    if target is S.RECTIFIED and not (has_note or has_after_photo):
        return "rectification needs an after photo or a note"
    if target is S.REJECTED and not has_note:
        return "rejecting needs the reviewer's reason as a note (it goes to retraining)"
    return None

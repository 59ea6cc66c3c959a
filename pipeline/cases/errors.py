"""Errors the ledger raises for bad input; each message names what was wrong and what would be right.

They subclass ValueError/LookupError so the CLI's generic handler prints them as plain errors.
"""

from __future__ import annotations


class LedgerError(ValueError):
    """Base for ledger input errors."""


class CaseNotFound(LedgerError, LookupError):
    def __init__(self, case_id: int):
        super().__init__(f"no case with id {case_id}")
        self.case_id = case_id


class InvalidTransition(LedgerError):
    """A status change the workflow does not allow, or one missing what it needs (an owner, a reason, a photo)."""

    def __init__(self, case_id: int, current: str, target: str, reason: str):
        super().__init__(f"case {case_id}: cannot move from '{current}' to '{target}': {reason}")
        self.case_id, self.current, self.target = case_id, current, target


class EvidenceError(LedgerError):
    """An evidence file that is missing, unreadable or not what its hash says."""


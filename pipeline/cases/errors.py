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


class StorageError(RuntimeError):
    """The ledger's database or evidence directory cannot take writes: read-only, full, missing, a file where a
    folder should be. Not an input error: the same report would succeed once the storage is fixed, so callers
    keep what they could not post instead of dropping it, and a batch job stops instead of failing every file."""

"""The rectification ledger (整改台账): cases from incidents, their lifecycle, evidence, delivery and reports.

Modules, each for one job: `config` (settings), `lifecycle` (the workflow as data), `store` (the one entry
point, `CaseStore`, in front of `posting`, `workflow` and `queries`), `apply` and `attach` (reports and
stored files onto rows), `clock` (the ledger's time), `evidence_store` and `retention` (files),
`outbox` + `delivery` (outbound messages), `verify` (auto-verification), `report` (monthly figures).
The tables, the engine and the migrations are `pipeline.db`.
Names below import lazily so `streetorder --help` stays fast.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "LedgerConfig": "config",
    "CaseStatus": "lifecycle",
    "InvalidTransition": "errors",
    "CaseNotFound": "errors",
    "LedgerError": "errors",
    "EvidenceError": "errors",
    "CaseStore": "store",
    "Step": "workflow",
    "CaseFilter": "queries",
    "CaseView": "views",
    "PostResult": "views",
    "EvidenceStore": "evidence_store",
    "OutboxWorker": "outbox",
    "AutoVerifier": "verify",
    "VerifyAction": "verify",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

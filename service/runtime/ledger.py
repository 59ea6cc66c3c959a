"""The ledger's health as /ready reports it. The ledger itself (`CaseStore`) is safe to call from any thread
(one transaction per call), so the service shares one store and case routes never take the engine lock."""

from __future__ import annotations

from sqlalchemy import text

from pipeline.cases import CaseStore
from pipeline.db.quarantine import quarantine_count


def quarantined(store: CaseStore) -> int | None:
    """Reports the ledger refused and keeps for an admin; None when the database does not answer."""
    try:
        return quarantine_count(store.db)
    except Exception:
        return None


def database_error(store: CaseStore) -> str | None:
    """Why the ledger's database does not answer, None when it does."""
    try:
        with store.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return None
    except Exception as e:
        return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"

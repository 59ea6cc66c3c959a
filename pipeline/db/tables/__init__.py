"""Every table of the one database, defined by owner: `ledger` (cases, their incidents, history, evidence and
outbox), `annotations`, `keys` (API keys, review sessions), `intake` (camera frame order, camera state, quarantine,
camera outages) and `night` (the night job's progress).

Importing this package loads them all, so `Base.metadata` is the whole schema (the migrations' target).
"""

from __future__ import annotations

from .annotations import Annotation
from .base import Base, Id, UtcDateTime
from .intake import CameraFrame, CameraOutage, CameraState, QuarantinedReport
from .keys import ApiKey, ReviewSession
from .ledger import Case, CaseEvent, CaseEvidence, CaseIncident, OutboxMessage, location_columns
from .night import NightProgress

__all__ = [
    "Annotation", "ApiKey", "Base", "CameraFrame", "CameraOutage", "CameraState", "Case", "CaseEvent", "CaseEvidence", "CaseIncident", "Id",
    "NightProgress", "OutboxMessage", "QuarantinedReport", "ReviewSession", "UtcDateTime", "location_columns",
]

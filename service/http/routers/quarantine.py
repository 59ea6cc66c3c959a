"""GET /quarantine: incident reports the ledger refused, with the reason, for an admin (`streetorder cases
quarantine` retries or drops them)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from pipeline.db.quarantine import quarantine_count, quarantined

from ..deps import Store
from ..errors import error_responses
from ..paging import Paging, page_fields
from ..schemas.quarantine import QuarantineList

router = APIRouter(prefix="/quarantine", tags=["admin"])


@router.get("", response_model=QuarantineList, summary="Incident reports the ledger refused, oldest first", responses=error_responses(401, 422, 503))
def list_quarantine(store: Store, request: Request, page: Paging) -> QuarantineList:
    reports = quarantined(store.db, limit=page.limit, offset=page.offset)
    return QuarantineList(reports=reports, **page_fields(request, page, quarantine_count(store.db)))

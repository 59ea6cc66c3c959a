"""GET /quarantine: incident reports the ledger refused, with the reason, for an admin (`streetorder cases
quarantine` retries or drops them)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from pipeline.db.quarantine import QuarantineView, quarantine_count, quarantined

from ..deps import Store
from ..errors import error_responses

router = APIRouter(prefix="/quarantine", tags=["admin"])


class QuarantineList(BaseModel):
    model_config = ConfigDict(frozen=True)

    total: int = Field(description="Quarantined reports in all")
    reports: list[QuarantineView]


@router.get("", response_model=QuarantineList, summary="Incident reports the ledger refused, oldest first", responses=error_responses(401, 422, 503))
def list_quarantine(
    store: Store, limit: Annotated[int, Query(ge=1, le=1000)] = 100, offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
) -> QuarantineList:
    return QuarantineList(total=quarantine_count(store.db), reports=quarantined(store.db, limit=limit, offset=offset))

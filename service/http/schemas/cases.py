"""/cases: lists of the ledger's own `CaseView`, and moving a case along the workflow."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from pipeline.cases import CaseView
from pipeline.cases.lifecycle import CaseStatus
from pipeline.domain import FreeText, PlaceText

from .common import Page


class CaseList(Page):
    count: int = Field(description="Cases on this page")
    cases: list[CaseView]


class TransitionIn(BaseModel):
    """The actor kept in the history is the API key's name, never a field of the request (`actor` is still
    accepted, and ignored, so that older clients keep working)."""

    # documented, so a client (or a fuzzer) can know: `fixture` goes only with `to: rejected`
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"if": {"properties": {"fixture": {"const": True}}, "required": ["fixture"]}, "then": {"properties": {"to": {"const": "rejected"}}}},
    )

    to: CaseStatus = Field(description="Target status")
    actor: str | None = Field(
        None, max_length=200, deprecated=True,
        description="Deprecated and ignored: the actor recorded in the history is always the calling key's name. Accepted only so that older clients keep working.",
    )
    note: FreeText | None = Field(None, max_length=2000, description="Required to reject (the reason) and to rectify without a photo")
    owner: PlaceText | None = Field(None, max_length=200, description="Point owner (点位长) to dispatch to; defaults to the case's")
    fixture: bool = Field(False, description="With to=rejected: also add fixtures for the case's spot so the camera stops raising it")

"""What the resources' schemas share: frozen answers, boxes, and the paging fields of every list."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

Box = tuple[float, float, float, float]


class Out(BaseModel):
    """An answer: frozen once built."""

    model_config = ConfigDict(frozen=True)


class Page(Out):
    """The paging fields of every list answer (`paging.page_fields` fills them)."""

    total: int = Field(description="Items matching the filters, over all pages")
    offset: int = Field(description="Items skipped before this page")
    limit: int = Field(description="Most items per page")
    next: str | None = Field(description="URL of the next page; null on the last")

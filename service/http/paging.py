"""Offset paging, the same on every list route: `limit` and `offset` in, `total` and a `next` link out
(`schemas.common.Page`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request
from pydantic import BaseModel

from .params import MAX_OFFSET

MAX_LIMIT = 1000


class PageIn(BaseModel):
    limit: int
    offset: int


def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Most items to return")] = 200,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip (oldest first)")] = 0,
) -> PageIn:
    return PageIn(limit=limit, offset=offset)


Paging = Annotated[PageIn, Depends(page_params)]


def page_fields(request: Request, page: PageIn, total: int) -> dict:
    nxt = page.offset + page.limit
    link = None
    if nxt < total:
        url = request.url.include_query_params(offset=nxt, limit=page.limit)
        public = request.app.state.service.settings.public_url  # links go where clients reach the service
        link = f"{public}{url.path}?{url.query}" if public else str(url)
    return {"total": total, "offset": page.offset, "limit": page.limit, "next": link}


def window(items: list, page: PageIn) -> list:
    return items[page.offset : page.offset + page.limit]

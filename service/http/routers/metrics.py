"""GET /metrics: Prometheus text format (service/runtime/metrics.py has the series).

Behind the API key like every other route (a scraper sends X-API-Key); which role may read it is for the
roles work to decide (issue 8 §2).
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from ..deps import State
from ..errors import error_responses

router = APIRouter(tags=["health"])


@router.get(
    "/metrics", summary="Prometheus metrics", response_class=Response, responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text exposition format 0.0.4"}, **error_responses(401)},
)
async def metrics(state: State) -> Response:
    """Request latency per route template, detector time and batch sizes, detector queue depth, image memory
    in use, report backlog, inference requests in flight and the admission's estimate, cases created, each
    streamed camera's state and counters (`streetorder_stream_*`), and the process's RSS and CPU. On the event loop (no thread), so a scrape answers during a burst."""
    body, ctype = state.metrics.exposition()
    return Response(body, media_type=ctype)

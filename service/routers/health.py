"""Liveness and readiness: /health says the process answers; /ready says it can do its job."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ..deps import State
from ..schemas import Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health, summary="Liveness")
def health() -> Health:
    return Health()


@router.get("/ready", response_model=Readiness, summary="Readiness: model loaded, database reachable, config state", responses={503: {"model": Readiness}})
def ready(state: State) -> JSONResponse:
    """503 until a model is loaded and the database answers, and while reports pile up in the backlog instead of
    draining. A failed config reload does not make the service unready (the last good config keeps serving)
    but is reported in `config_error`."""
    state.config()  # notice a config edit now, not only on the next frame
    db_error = state.database_error()
    model = state.models.current
    backlog_error = state.backlog_error
    body = Readiness(
        ready=model is not None and db_error is None and backlog_error is None,
        model=model.name if model else None,
        model_error=state.models.error if model is None else None,
        database=db_error is None,
        database_error=db_error,
        config_version=state.source.version,
        config_error=state.source.error,
        backlog=state.backlog,
        backlog_error=backlog_error,
        quarantined=state.quarantined() if db_error is None else None,
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if body.ready else 503)

"""Liveness and readiness: /health says the process answers; /ready says it can do its job."""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Request, Security
from fastapi.responses import JSONResponse

from ...runtime.ledger import database_error, quarantined
from ...runtime.state import ServiceState
from ..auth import OPEN_WARNING, get_auth, optional_principal
from ..deps import State
from ..errors import error_responses
from ..keys import Principal, Role
from ..schemas.health import Health, Readiness, ReadyBrief, StreamOut

router = APIRouter(tags=["health"])


# /ready's database probe runs here, never on the pool the reviewer routes use nor behind inference.
_PROBES = anyio.CapacityLimiter(2)


@router.get("/health", response_model=Health, summary="Liveness")
async def health() -> Health:
    """On the event loop, never on a thread pool: it answers while every thread is busy."""
    return Health()


@router.get(
    "/ready", response_model=Readiness | ReadyBrief, summary="Readiness: model loaded, database reachable, config state",
    responses={503: {"model": Readiness | ReadyBrief}, **error_responses(401, 429)},
    openapi_extra={"security": [{}]},  # the key is optional here: FastAPI lists the header's scheme, `{}` says "or none"
)
async def ready(state: State, request: Request, who: Principal | None = Security(optional_principal)) -> JSONResponse:
    """503 until a model is loaded and the database answers, and while reports pile up in the backlog instead of
    draining. Anyone may ask, and is told only `ready` (and
    any warnings); with an admin key the answer has the details. A failed config reload does not make the
    service unready (the last good config keeps serving) but is reported in `config_error`. Nor does a camera
    whose stream is down: readiness says whether this process can do its job (a balancer that took it out would
    not bring the camera back, and the other cameras and POST /frames work); `streams` has each camera's state."""
    db_error, quarantine = await anyio.to_thread.run_sync(_probe_ledger, state, limiter=_PROBES)
    model = state.detector.models.current
    backlog_error = state.live.backlog_error
    body = Readiness(
        ready=model is not None and db_error is None and backlog_error is None,
        model=model.name if model else None,
        model_error=state.detector.models.error if model is None else None,
        database=db_error is None,
        database_error=db_error,
        config_version=state.cameras.source.version,
        config_error=state.cameras.source.error,
        backlog=state.live.backlog,
        backlog_error=backlog_error,
        quarantined=quarantine,
        streams=[_stream(s) for s in state.streams.statuses()],
        warnings=get_auth(request).warnings(),
    )
    body = body.model_copy(update={"reason": _reason(body, state.link.reason)})
    if who is None or not who.allows(Role.ADMIN):
        body = ReadyBrief(ready=body.ready, reason=body.reason, warnings=[w for w in body.warnings if w == OPEN_WARNING])  # how keys are set up is admin business
    # `reason` only when there is one: a ready service answers as it always did
    return JSONResponse(body.model_dump(mode="json", exclude={"reason"} if body.reason is None else None), status_code=200 if body.ready else 503)


def _stream(st) -> StreamOut:
    return StreamOut(
        camera_id=st.camera_id, kind=st.kind, url=st.url, state=st.state.value, since=st.since, down_since=st.down_since, last_sample_at=st.last_sample_at,
        samples=st.samples, decoded=st.decoded, reconnects=st.reconnects, failures=st.failures, last_error=st.last_error, decode_mode=st.decode_mode,
        codec=st.codec, keyframe_interval_s=st.keyframe_interval_s,
    )


def _reason(body: Readiness, degraded: str | None) -> str | None:
    """Why not ready, for anyone: no addresses or error texts (those are in the admin's fields)."""
    why = [
        "no model is loaded" if body.model is None else None,
        degraded or ("the ledger database does not answer" if not body.database else None),
        f"{body.backlog} report(s) wait in the journal for the ledger" if body.backlog_error and not degraded else None,
    ]
    return "; ".join(w for w in why if w) or None


def _probe_ledger(state: ServiceState) -> tuple[str | None, int | None]:
    """(why the database does not answer, reports in quarantine); blocking, on a probe thread."""
    state.cameras.config()  # notice a config edit now, not only on the next frame
    db_error = database_error(state.store, state.link)
    return db_error, quarantined(state.store) if db_error is None else None

"""The app factory: `create_app(settings)` builds the service state and wires the routers. Nothing is created at
import time, so tests build as many independent apps as they like and `import service.http.app` is cheap.

The serving path is onnxruntime only: nothing here imports torch (tests/service/test_no_torch.py checks it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Security
from fastapi_offline import FastAPIOffline

from . import access_log
from .admission_gate import AdmissionGate
from .auth import Auth, refuse_key_in_url, require
from .errors import error_responses, install_handlers
from ..runtime.memory import bound_malloc
from ..runtime.state import ServiceState
from ..settings import ServiceSettings
from .keys import Role
from .request_timer import RequestTimer
from . import openapi_facts
from .routers import cameras, cases, detect, evidence, frames, health, metrics, models, overview, photos, quarantine, review, review_labels
from .uploads import BodyLimit, BodyTimeout, ImageReader

DESCRIPTION = """Street-order problems (street vending, messy non-motor parking, exposed garbage) from camera frames
and patrol photos, as cases in the rectification ledger (整改台账).

Send an API key as `X-API-Key` (never in the URL). Each key has a role: `camera` (frames, photos, detect),
`reviewer` (cases, the review page, evidence), `admin` (models, cameras and fixtures; and everything else).
Create keys with `streetorder keys create --role ROLE --name NAME`. List routes page with `limit`/`offset` and
answer with `total` and a `next` link. Errors are JSON `{"detail": ...}`."""


def create_app(settings: ServiceSettings | None = None, open_state: Callable[[ServiceSettings], ServiceState] = ServiceState.open) -> FastAPI:
    """Build the app. Raises ConfigError (bad camera config) or a database error (a ledger that refuses us) at
    once; a PostgreSQL that does not answer starts it degraded (`runtime.ledger.LedgerLink`), and a model that
    fails to load only makes /ready say so. `open_state`: what runs the models and the engine, this process by
    default; `streetorder serve --ray` passes the cluster's (`service/cluster/state.py`), same routes on top."""
    settings = settings or ServiceSettings.load()
    bound_malloc()
    Auth.check_configured(settings)  # fail fast, before the model loads (the key cache answers while the database is down)
    state = open_state(settings)
    try:
        auth = Auth.open_for(settings, state.store.db, state.link)  # no keys and no --insecure-open: refuse to start
    except Exception:
        state.close()
        raise

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state.start()
        yield
        state.close()

    # FastAPIOffline: /docs and /redoc with Swagger UI and ReDoc served from the package, no CDN.
    app = FastAPIOffline(
        title="streetorder", version="0.1.0", description=DESCRIPTION, lifespan=lifespan, dependencies=[Depends(refuse_key_in_url)],
    )
    app.state.service = state
    app.state.auth = auth
    app.state.images = ImageReader(state.detector.budget, settings.max_pixels, state.metrics)
    install_handlers(app)
    app.add_middleware(BodyLimit, limit=settings.max_upload_bytes)
    app.add_middleware(BodyTimeout, timeout_s=settings.body_timeout_s)  # a stalled upload: 408, connection freed
    app.add_middleware(AdmissionGate, admission=state.detector.admission, auth=auth)  # inference past the latency budget: 503 before its body is read
    app.add_middleware(RequestTimer, metrics=state.metrics)  # outermost: a 413 from BodyLimit is timed too
    access_log.install()

    # ---- who may call what (auth.py); admin may call everything -------------------------------------
    denied = error_responses(401, 403, 429)
    app.include_router(health.router)  # anyone: /ready tells an anonymous caller only ready or not
    for module, role in ((detect, Role.CAMERA), (frames, Role.CAMERA), (photos, Role.CAMERA), (cases, Role.REVIEWER), (models, Role.ADMIN), (cameras, Role.ADMIN), (quarantine, Role.ADMIN), (metrics, Role.ADMIN)):
        app.include_router(module.router, dependencies=[Security(require(role))], responses=denied)
    # the review page's browser session also opens evidence (the page's images); evidence may be public
    app.include_router(evidence.router, dependencies=[] if settings.evidence_public else [Security(require(Role.REVIEWER, session=True))], responses=denied)
    app.include_router(review.router)  # its routes check the session themselves (the page answers a login form)
    app.include_router(review_labels.router)  # the review page's box editor (issue 9): checks the session itself
    app.include_router(overview.router)  # the district overview (数据看板, issue 22): reviewers and admins, checks the session itself
    openapi_facts.install(app, settings)  # the detector floor, fields that go together
    return app

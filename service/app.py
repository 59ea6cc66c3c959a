"""The app factory: `create_app(settings)` builds the service state and wires the routers. Nothing is created at
import time, so tests build as many independent apps as they like and `import service.app` is cheap.

The serving path is onnxruntime only: nothing here imports torch (tests/service/test_no_torch.py checks it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from .deps import require_key
from .errors import install_handlers
from .memory import fix_malloc_threshold
from .metrics import RequestTimer
from .routers import cameras, cases, detect, evidence, frames, health, metrics, models, photos, review
from .settings import ServiceSettings
from .state import ServiceState
from .uploads import BodyLimit

DESCRIPTION = """Street-order problems (street vending, messy non-motor parking, exposed garbage) from camera frames
and patrol photos, as cases in the rectification ledger (整改台账).

Send the API key as `X-API-Key` when one is configured. Errors are JSON `{"detail": ...}`."""


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """Build the app. Raises ConfigError (bad camera config) or a database error (ledger unreachable) at once;
    a model that fails to load only makes /ready say so."""
    settings = settings or ServiceSettings.load()
    fix_malloc_threshold()
    state = ServiceState.open(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        state.close()

    app = FastAPI(title="streetorder", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.service = state
    install_handlers(app)
    app.add_middleware(BodyLimit, limit=settings.max_upload_bytes)
    app.add_middleware(RequestTimer, metrics=state.metrics)  # outermost: a 413 from BodyLimit is timed too

    app.include_router(health.router)
    keyed = [Depends(require_key)]
    for module in (detect, frames, photos, cases, models, cameras, metrics):
        app.include_router(module.router, dependencies=keyed)
    app.include_router(evidence.router)  # its own key check: evidence may be public
    app.include_router(review.router)  # the page shows a login form; its actions need the key
    return app

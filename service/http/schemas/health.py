"""/health and /ready."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .common import Out


class Health(Out):
    status: Literal["ok"] = "ok"


class ReadyBrief(Out):
    """What /ready tells a caller without an admin key: ready or not, and any warning about how it runs."""

    ready: bool = Field(description="True when a model is loaded, the ledger database answers and the backlog is not growing")
    reason: str | None = Field(None, description="Why not ready, in words (e.g. degraded: the ledger database is unreachable, frames and photos are journaled)")
    warnings: list[str] = Field(default_factory=list, description="E.g. that the service runs with --insecure-open")


class Readiness(ReadyBrief):
    """What /ready tells an admin."""

    model: str | None = Field(description="The model serving, if any")
    model_error: str | None = Field(description="Why no model is loaded")
    database: bool
    database_error: str | None
    config_version: int = Field(description="Bumps on every successful reload of the camera config")
    config_error: str | None = Field(description="Why the last reload failed; the last good config stays in use")
    backlog: int = Field(description="Incident reports waiting in the journaled queue because the ledger was unavailable")
    backlog_error: str | None = Field(None, description="Why the backlog is not draining (so it grows); not ready while set")
    quarantined: int | None = Field(None, description="Reports the ledger refused, kept for an admin (GET /quarantine); null when the database is down")

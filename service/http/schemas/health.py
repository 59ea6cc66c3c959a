"""/health and /ready."""

from __future__ import annotations

from datetime import datetime
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


class StreamOut(Out):
    """One streamed camera as the service reads it (credentials never appear: the URL is redacted)."""

    camera_id: str
    kind: Literal["rtsp", "http"]
    url: str = Field(description="The stream's URL, any user:password@ replaced by ***@")
    state: Literal["connecting", "up", "down", "offline"] = Field(
        description="connecting: no picture yet; up: pictures arrive; down: the last attempt failed, retrying with backoff; "
        "offline: down (or never up) longer than its offline_after_s, a camera outage in the ledger"
    )
    since: datetime = Field(description="When it entered this state")
    down_since: datetime | None = Field(description="The last picture before the current outage (or the reader's start); null while up")
    last_sample_at: datetime | None
    samples: int = Field(description="Pictures taken from the stream")
    decoded: int = Field(description="Frames decoded (more than samples when every frame must be decoded)")
    reconnects: int
    failures: int = Field(description="Failed attempts and drops")
    last_error: str | None = Field(description="Why it last failed (credentials redacted), kept after it came back")
    decode_mode: Literal["keyframes", "all"] | None = Field(description="RTSP: key frames only (cheap) or every frame")
    codec: str | None
    keyframe_interval_s: float | None


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
    streams: list[StreamOut] = Field(
        default_factory=list, description="The streamed cameras' states. A camera that is down does not make the service unready: the others and POST /frames still work",
    )

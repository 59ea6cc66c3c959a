"""The service's settings: one pydantic model, filled from `STREETORDER_*` environment variables and then from
command-line flags (`streetorder serve --help`), so a container and a shell start it the same way.

The names reuse the ledger's and the model registry's variables where they exist ($STREETORDER_DB,
$STREETORDER_MODELS; $STREETORDER_CONFIG stays the ledger config), so one environment drives every command.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from pipeline.cases.config import LedgerConfig
from pipeline.detect import models_dir
from pipeline.source.images import MAX_PIXELS
from pipeline.paths import SAMPLE_CONFIG

ENV_PREFIX = "STREETORDER_"


def _env(name: str) -> dict:
    return {"env": ENV_PREFIX + name}


class ServiceSettings(BaseModel):
    """Everything `create_app` needs. Paths are taken as given (relative to the working directory)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    camera_config: Path = Field(
        SAMPLE_CONFIG, title="Camera config", description="Cameras, zones, rules (YAML); re-read on change, no restart",
        json_schema_extra=_env("CAMERA_CONFIG"),
    )
    ledger_config: Path | None = Field(
        None, title="Ledger config", description="Rectification ledger settings (YAML); unset: $STREETORDER_CONFIG, else the built-in defaults",
        json_schema_extra=_env("LEDGER_CONFIG"),
    )
    ledger: LedgerConfig | None = Field(None, title="Ledger", description="A ready ledger config (tests, embedding); replaces ledger_config")
    db: str | None = Field(None, title="Database URL", description="Overrides the ledger's database_url", json_schema_extra=_env("DB"))
    model: str | None = Field(
        None, title="Model", description="Model name under models_dir, a model folder, or an .onnx file; unset: the one models/CURRENT names",
        json_schema_extra=_env("MODEL"),
    )
    models_dir: Path = Field(default_factory=models_dir, title="Models directory", description="One folder per model version, plus CURRENT", json_schema_extra=_env("MODELS"))
    persist_model: bool = Field(
        False, title="Persist model choice", description="PUT /models/current also rewrites models_dir/CURRENT, so a restart keeps the choice",
        json_schema_extra=_env("PERSIST_MODEL"),
    )
    model_watch_s: float = Field(
        2.0, ge=0, title="Follow CURRENT every (s)", description="While serving models/CURRENT (no explicit model), re-read it this often and swap to a newly promoted or rolled-back model with no restart; 0: never",
        json_schema_extra=_env("MODEL_WATCH_S"),
    )
    conf: float = Field(0.25, ge=0.01, le=1, title="Detector score floor", description="Detections below it never reach the engine; /detect cannot go lower", json_schema_extra=_env("CONF"))
    imgsz: int | None = Field(None, ge=32, title="Inference size", description="Pixels (multiple of 32); unset: the model's own", json_schema_extra=_env("IMGSZ"))
    threads: int | None = Field(None, ge=1, title="ONNX threads", description="onnxruntime intra-op threads; unset: all cores", json_schema_extra=_env("THREADS"))
    # ---- auth (roles, sessions, login limits) ----
    api_key: SecretStr | None = Field(
        None, title="Legacy master key",
        description="Deprecated: still accepted as an admin key (with a warning) until role keys replace it; create them with `streetorder keys create`",
        json_schema_extra=_env("API_KEY"),
    )
    insecure_open: bool = Field(
        False, title="Insecure open mode", description="Start with no API keys at all and leave every route open (for a laptop demo, never a city network)",
        json_schema_extra=_env("INSECURE_OPEN"),
    )
    evidence_public: bool = Field(
        False, title="Public evidence", description="Serve /evidence without a key: its URLs are unguessable sha256 names, as linked in outbound case messages",
        json_schema_extra=_env("EVIDENCE_PUBLIC"),
    )
    session_hours: float = Field(8, gt=0, le=24 * 30, title="Review session length", description="Hours a review-page login lasts", json_schema_extra=_env("SESSION_HOURS"))
    auth_failures_per_address: int = Field(
        10, ge=1, title="Failed logins per address", description="Failed authentications one client address may make per window before it gets 429",
        json_schema_extra=_env("AUTH_FAILURES_PER_ADDRESS"),
    )
    auth_failures_global: int = Field(
        100, ge=1, title="Failed logins overall", description="Failed authentications of all clients per window before the review login form answers 429 to everyone",
        json_schema_extra=_env("AUTH_FAILURES_GLOBAL"),
    )
    auth_window_s: float = Field(300, gt=0, title="Failure window", description="Seconds a failed authentication counts against the limits", json_schema_extra=_env("AUTH_WINDOW_S"))
    max_upload_bytes: int = Field(20 * 1024 * 1024, ge=1024, title="Upload limit", description="Largest request body in bytes; more is refused with 413", json_schema_extra=_env("MAX_UPLOAD_BYTES"))
    max_pixels: int = Field(
        MAX_PIXELS, ge=1, title="Pixel limit", description="Largest image in pixels (width x height), read from the header before anything is decoded; more is refused with 422",
        json_schema_extra=_env("MAX_PIXELS"),
    )
    image_memory_mb: int = Field(
        1024, ge=16, title="Image memory budget", description="MiB that uploaded images may take together while decoded and processed (about 14 bytes a pixel at the decode's peak); "
        "the service's RSS stays under its baseline (the loaded models) plus this. A request that does not fit waits `image_memory_wait_s`, then gets 503 with Retry-After",
        json_schema_extra=_env("IMAGE_MEMORY_MB"),
    )
    image_memory_wait_s: float = Field(2.0, ge=0, le=60, title="Image memory wait", description="Seconds an upload waits for the image memory budget before 503", json_schema_extra=_env("IMAGE_MEMORY_WAIT_S"))
    batching: bool = Field(True, title="Micro-batching", description="Concurrent requests' images go through the detector together; off: each request runs it alone", json_schema_extra=_env("BATCHING"))
    batch_max_size: int = Field(8, ge=1, le=64, title="Largest batch", description="Images per detector call at most", json_schema_extra=_env("BATCH_MAX_SIZE"))
    batch_max_wait_ms: float = Field(
        4.0, ge=0, le=1000, title="Batch wait", description="Milliseconds the oldest image may wait for a batch to fill; only while other requests are still decoding",
        json_schema_extra=_env("BATCH_MAX_WAIT_MS"),
    )
    batch_queue_size: int = Field(64, ge=1, title="Detector queue", description="Images that may wait for the detector; more are refused with 503 and Retry-After", json_schema_extra=_env("BATCH_QUEUE_SIZE"))
    retry_after_s: int = Field(1, ge=1, le=3600, title="Retry-After", description="Seconds a client shed with 503 is told to wait", json_schema_extra=_env("RETRY_AFTER_S"))
    evidence_dir: Path = Field(
        Path("var/engine-evidence"), title="Engine evidence directory", description="Where the engine writes evidence before the ledger stores it by content",
        json_schema_extra=_env("EVIDENCE_DIR"),
    )
    journal: Path = Field(
        Path("var/report-journal.jsonl"), title="Report journal",
        description="Append-only, fsync'ed file of incident reports and frame times the ledger could not take yet (database down); replayed first on start",
        json_schema_extra=_env("JOURNAL"),
    )
    retry_interval_s: float = Field(2.0, gt=0, le=3600, title="Retry interval", description="Seconds between attempts to post the queued reports while the ledger is unavailable", json_schema_extra=_env("RETRY_INTERVAL_S"))
    max_clock_skew_s: float = Field(
        300.0, ge=0, title="Allowed clock skew", description="A frame or photo taken more than this many seconds after the service's clock is refused (422), never stored",
        json_schema_extra=_env("MAX_CLOCK_SKEW_S"),
    )
    earliest_taken_at: AwareDatetime = Field(
        datetime(2000, 1, 1, tzinfo=UTC), title="Earliest capture time", description="Frames and photos taken before it are refused (422): a camera or phone with a reset clock",
        json_schema_extra=_env("EARLIEST_TAKEN_AT"),
    )
    public_url: str | None = Field(
        None, title="Public base URL", description="How clients reach this service, e.g. https://streetorder.city.example; sets the ledger's evidence_base_url",
        json_schema_extra=_env("PUBLIC_URL"),
    )

    @field_validator("public_url")
    @classmethod
    def _http(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError(f"public_url must start with http:// or https://, got {v!r}")
        return v.rstrip("/") if v else v

    @field_validator("imgsz")
    @classmethod
    def _multiple_of_32(cls, v: int | None) -> int | None:
        if v is not None and v % 32:
            raise ValueError(f"imgsz must be a multiple of 32, got {v}")
        return v

    @classmethod
    def env_names(cls) -> dict[str, str]:
        """Field name → environment variable."""
        return {name: f.json_schema_extra["env"] for name, f in cls.model_fields.items() if isinstance(f.json_schema_extra, dict)}

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> ServiceSettings:
        """Defaults, then the environment, then `overrides` (command-line flags; None means 'not given')."""
        environ = os.environ if environ is None else environ
        data: dict[str, Any] = {name: environ[var] for name, var in cls.env_names().items() if environ.get(var, "") != ""}
        data.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            names = cls.env_names()
            lines = [f"{'.'.join(map(str, err['loc']))} ({names.get(str(err['loc'][0]), 'flag')}): {err['msg']}" for err in e.errors()]
            raise ValueError("invalid service settings:\n  " + "\n  ".join(lines)) from None

    def ledger_settings(self) -> LedgerConfig:
        """The ledger config this service uses, with the database and evidence URL overrides applied."""
        cfg = self.ledger or LedgerConfig.load(self.ledger_config, database_url=self.db)
        if self.ledger is not None and self.db:
            cfg = cfg.model_copy(update={"database_url": self.db})
        if self.public_url:
            cfg = cfg.model_copy(update={"evidence_base_url": f"{self.public_url}/evidence/"})
        return cfg

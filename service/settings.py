"""The service's settings: one pydantic model, filled from `STREETORDER_*` environment variables and then from
command-line flags (`streetorder serve --help`), so a container and a shell start it the same way.

The names reuse the ledger's and the model registry's variables where they exist ($STREETORDER_DB,
$STREETORDER_MODELS; $STREETORDER_CONFIG stays the ledger config), so one environment drives every command.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from pipeline.cases.config import LedgerConfig
from pipeline.detect import models_dir
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
    api_key: SecretStr | None = Field(
        None, title="API key", description="Required as the X-API-Key header (or the review page's login cookie) on every route but /health and /ready; unset: no auth",
        json_schema_extra=_env("API_KEY"),
    )
    evidence_public: bool = Field(
        False, title="Public evidence", description="Serve /evidence without the API key: its URLs are unguessable sha256 names, as linked in outbound case messages",
        json_schema_extra=_env("EVIDENCE_PUBLIC"),
    )
    max_upload_bytes: int = Field(20 * 1024 * 1024, ge=1024, title="Upload limit", description="Largest request body in bytes; more is refused with 413", json_schema_extra=_env("MAX_UPLOAD_BYTES"))
    evidence_dir: Path = Field(
        Path("var/engine-evidence"), title="Engine evidence directory", description="Where the engine writes evidence before the ledger stores it by content",
        json_schema_extra=_env("EVIDENCE_DIR"),
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

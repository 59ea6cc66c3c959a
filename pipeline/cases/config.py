"""The ledger's settings as validated data: one YAML file (or defaults), a few environment overrides.

Every field has a title and description so the same models validate the file, document it and could render
a settings page. Times are seconds or hours as named; nothing here reads the wall clock.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from ..config.settings import PipelineSettings
from ..domain import VIOLATION_TYPES, ViolationType

DEFAULT_DB_URL = "sqlite:///var/streetorder.db"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AutoVerifyConfig(_Section):
    """How later frames from a fixed camera confirm that a dispatched case was rectified (自动核查)."""

    gone_for_s: float = Field(600, gt=0, title="Gone for", description="Seconds of frame time the spot must stay clear before the case counts as rectified and verified")
    iou_threshold: float = Field(0.3, gt=0, le=1, title="IoU threshold", description="A detection of the case's type overlapping the case's box at least this much means the problem is still there")
    max_frame_gap_s: float = Field(120, gt=0, title="Max frame gap", description="A gap between checked frames longer than this restarts the 'gone' timer: an unwatched spot is not a clear spot")


class RetentionConfig(_Section):
    """How long evidence of closed cases is kept. Rejected cases keep theirs: they feed retraining."""

    closed_days: int | None = Field(365, ge=1, title="Closed-case retention", description="Days after closing before a case's evidence references are purged and unreferenced files deleted; null keeps them forever")
    orphan_grace_s: float = Field(3600, ge=0, title="Orphan grace", description="Unreferenced files younger than this are kept, so a posting still in its transaction never loses its files")


class OutboxConfig(_Section):
    """Retry policy of the delivery worker."""

    max_attempts: int = Field(40, ge=1, title="Max attempts", description="Attempts before a message is marked dead (about 6 hours with the default backoff)")
    backoff_base_s: float = Field(5, gt=0, title="Backoff base", description="Delay after the first failure; it doubles with each further failure")
    backoff_max_s: float = Field(600, gt=0, title="Backoff cap", description="Longest delay between two attempts")
    batch_size: int = Field(100, ge=1, title="Batch size", description="Messages examined per channel in one delivery pass")

    @model_validator(mode="after")
    def _cap_not_below_base(self) -> OutboxConfig:
        if self.backoff_max_s < self.backoff_base_s:
            raise ValueError(f"backoff_max_s ({self.backoff_max_s}) must not be below backoff_base_s ({self.backoff_base_s})")
        return self


class WebhookConfig(_Section):
    """HTTP delivery to the city's case system: a signed JSON POST per case event."""

    url: str = Field(title="URL", description="Receiver endpoint (http or https)")
    secret: SecretStr = Field(title="HMAC secret", description="Shared secret for the X-Streetorder-Signature header; $STREETORDER_WEBHOOK_SECRET overrides it")
    timeout_s: float = Field(10, gt=0, title="Timeout", description="Seconds to wait for the receiver's answer")

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"webhook url must start with http:// or https://, got {v!r}")
        return v

    @field_validator("secret")
    @classmethod
    def _secret_not_empty(cls, v: SecretStr) -> SecretStr:
        if len(v.get_secret_value()) < 16:
            raise ValueError("webhook secret must be at least 16 characters")
        return v


class MqttConfig(_Section):
    """MQTT delivery: one topic per violation type, `<topic_prefix>/<type>`."""

    host: str = Field("127.0.0.1", title="Host", description="Broker host")
    port: int = Field(1883, ge=1, le=65535, title="Port", description="Broker port")
    topic_prefix: str = Field("streetorder/cases", min_length=1, title="Topic prefix", description="Messages go to <prefix>/<type>, e.g. streetorder/cases/garbage")
    qos: Literal[1, 2] = Field(1, title="QoS", description="1 or 2; 0 could lose a message, so it is not offered")
    username: str | None = Field(None, title="User name", description="Broker user, if the broker needs one")
    password: SecretStr | None = Field(None, title="Password", description="Broker password")
    timeout_s: float = Field(10, gt=0, title="Timeout", description="Seconds to wait for the connection and for each acknowledgement")

    @field_validator("topic_prefix")
    @classmethod
    def _no_wildcards(cls, v: str) -> str:
        if any(c in v for c in "#+") or v.endswith("/"):
            raise ValueError(f"topic_prefix must not contain wildcards or end with '/', got {v!r}")
        return v


class LedgerConfig(_Section):
    """Everything the rectification ledger needs: where it stores, how it decides, where it delivers."""

    database_url: str = Field(DEFAULT_DB_URL, title="Database URL", description="SQLAlchemy URL; SQLite file (embedded default) or postgresql://… (production). $STREETORDER_DB overrides it")
    auto_upgrade: bool = Field(True, title="Upgrade on open", description="Run Alembic migrations to head when the store opens, so a fresh database just works")
    evidence_dir: Path = Field(Path("var/evidence"), title="Evidence directory", description="Root of the content-addressed evidence store")
    evidence_base_url: str = Field("http://127.0.0.1:8000/evidence/", title="Evidence base URL", description="Evidence URLs in outbound messages are this plus the file's sha256")
    deadlines_h: dict[str, float] = Field(
        default_factory=lambda: {t: k.deadline_h for t, k in VIOLATION_TYPES.items()},
        title="Deadlines",
        description="Hours from dispatch (交办) to rectification, per violation type; a type left out keeps its default (domain.VIOLATION_TYPES)",
    )
    relapse_days: float = Field(7, gt=0, title="Relapse window", description="A violation back at the same spot within this many days of closing reopens the case (反弹)")
    same_spot_radius_m: float = Field(30, ge=0, title="Same-spot radius", description="Cases with GPS this close (metres) are at the same spot even if their point names differ")
    report_timezone: str = Field("Asia/Shanghai", title="Report time zone", description="Months in reports start and end at midnight in this zone")
    autoverify: AutoVerifyConfig = Field(default_factory=AutoVerifyConfig, title="Auto-verification")
    retention: RetentionConfig = Field(default_factory=RetentionConfig, title="Retention")
    outbox: OutboxConfig = Field(default_factory=OutboxConfig, title="Outbox")
    webhook: WebhookConfig | None = Field(None, title="Webhook", description="Deliver to the city's case system over HTTP; null disables")
    mqtt: MqttConfig | None = Field(None, title="MQTT", description="Deliver over MQTT; null disables")

    @field_validator("deadlines_h")
    @classmethod
    def _deadline_per_type(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(v) - set(VIOLATION_TYPES))
        if unknown:
            raise ValueError(f"deadlines_h: unknown: {unknown}; the types are {', '.join(VIOLATION_TYPES)}")
        bad = {k: h for k, h in v.items() if not h > 0}
        if bad:
            raise ValueError(f"deadlines must be positive hours, got {bad}")
        return {t: v.get(t, k.deadline_h) for t, k in VIOLATION_TYPES.items()}

    def deadline_h(self, type_: ViolationType) -> float:
        """Hours to rectify a case of `type_`: the config's, else the type's default."""
        return self.deadlines_h.get(type_, VIOLATION_TYPES[type_].deadline_h)

    @field_validator("report_timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v

    @model_validator(mode="after")
    def _retention_outlives_relapse(self) -> LedgerConfig:
        days = self.retention.closed_days
        if days is not None and days < self.relapse_days:
            raise ValueError(f"retention.closed_days ({days}) must be at least relapse_days ({self.relapse_days}), or a relapse could reopen a case without its evidence")
        return self

    @property
    def channels(self) -> tuple[str, ...]:
        """The delivery channels that get an outbox row for every case event."""
        return tuple(name for name, section in (("webhook", self.webhook), ("mqtt", self.mqtt)) if section is not None)

    @classmethod
    def load(cls, path: str | Path | None = None, *, database_url: str | None = None) -> LedgerConfig:
        """Defaults, then the YAML file (`path`, else $STREETORDER_LEDGER_CONFIG or $STREETORDER_CONFIG), then the
        environment, then `database_url`."""
        env = PipelineSettings()
        path = path or env.ledger_config or env.config
        data: dict = {}
        if path:
            p = Path(path)
            if not p.is_file():
                raise FileNotFoundError(f"ledger config {p} does not exist")
            loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
            if loaded is not None and not isinstance(loaded, dict):
                raise ValueError(f"{p}: the ledger config must be a mapping at the top level")
            data = loaded or {}
        if env.db:
            data["database_url"] = env.db
        if env.webhook_secret and isinstance(data.get("webhook"), dict):
            data["webhook"] = {**data["webhook"], "secret": env.webhook_secret.get_secret_value()}
        if database_url:
            data["database_url"] = database_url
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            raise ValueError(f"invalid ledger config{f' in {path}' if path else ''}:\n{e}") from None

"""Every `STREETORDER_*` environment variable, in one place: the settings each process reads from its environment.

Two pydantic-settings models read them, one per process: `PipelineSettings` below (the command line, the night
job, the retraining loop; read when a value is needed, so a variable set later, as tests and notebooks do, still
counts) and `service.settings.ServiceSettings` (the live service, read once at start). Both derive from
`EnvSettings`, so both read `STREETORDER_<FIELD>` the same way: an empty variable counts as unset, names are
case-sensitive, a command-line flag wins over the variable, the variable over the default. No other module of
`pipeline/` or `service/` reads a `STREETORDER_*` variable (tests/config/test_settings_env.py checks it), and this table
lists every one of them (the same test keeps it complete).

| Variable | Default | Meaning |
|---|---|---|
| STREETORDER_DB | unset | Ledger database URL; overrides the ledger config's `database_url` (`--db` wins) |
| STREETORDER_LEDGER_CONFIG | unset | Ledger config YAML (`--ledger` wins); unset: STREETORDER_CONFIG, else built-in defaults |
| STREETORDER_CONFIG | unset | The earlier name of STREETORDER_LEDGER_CONFIG, still read |
| STREETORDER_WEBHOOK_SECRET | unset | Overrides the ledger config's `webhook.secret` |
| STREETORDER_MODELS | models | Models folder: one folder per model version, plus CURRENT (`--models-dir` wins) |
| STREETORDER_CLASSES | datasets/classes.yaml | The classes annotators add beyond the model's |
| STREETORDER_SAMPLES | var/samples | Root of the labelled sample versions |
| STREETORDER_FRAME_POOL | var/frames | Frame pool folder; `off`, `0`, `false` or `none` turns the pool off |
| STREETORDER_AUTO_VARIANTS | true | Whether `--backend auto` also times and serves the variants the gate accepted; `false`: f32 only (onnxruntime or OpenVINO) |
| STREETORDER_BACKEND_CACHE | var/backend-auto.json | Where `--backend auto` keeps its choice per model file, threads and CPU; `off`, `0`, `false` or `none`: choose anew in each process |
| STREETORDER_NIGHT_STREAMS | auto | Night job: detector streams per worker (`auto` or a number; `run --streams` wins); auto: one single-threaded stream per core, at most 4; 0: the detector in the decoding thread |
| STREETORDER_CAMERA_CONFIG | the sample config | Service: cameras, zones, rules (YAML) (`serve --config` wins) |
| STREETORDER_MODEL | models/CURRENT | Service: model name, model folder or .onnx file (`--model` wins) |
| STREETORDER_PERSIST_MODEL | false | Service: PUT /models/current also rewrites models/CURRENT |
| STREETORDER_MODEL_WATCH_S | 2 | Service: how often to re-read models/CURRENT and follow it; 0: never |
| STREETORDER_WARM_UP_S | 30 | Service: at each model load, build every configured camera's input shapes before it serves, for at most this long; 0: off |
| STREETORDER_CONF | 0.25 | Service: detector score floor |
| STREETORDER_IMGSZ | the model's | Service: inference size in pixels (a multiple of 32) |
| STREETORDER_THREADS | the cores shared out | Service: intra-op threads of each detector stream (one stream: the runtime's default, all cores) |
| STREETORDER_INFERENCE_STREAMS | auto | Service: micro-batches the detector runs at once (`auto` or a number); auto: one stream per 4 cores |
| STREETORDER_API_KEY | unset | Service: deprecated single master key, accepted as an admin key with a warning |
| STREETORDER_INSECURE_OPEN | false | Service: start with no API keys, every route open (demos only) |
| STREETORDER_EVIDENCE_PUBLIC | false | Service: serve /evidence without a key |
| STREETORDER_SESSION_HOURS | 8 | Service: hours a review-page login lasts |
| STREETORDER_AUTH_FAILURES_PER_ADDRESS | 10 | Service: failed authentications per client address per window before 429 |
| STREETORDER_AUTH_FAILURES_GLOBAL | 100 | Service: failed authentications of all clients per window before 429 |
| STREETORDER_AUTH_WINDOW_S | 300 | Service: seconds a failed authentication counts against the limits |
| STREETORDER_MAX_UPLOAD_BYTES | 20971520 | Service: largest request body; more is refused with 413 |
| STREETORDER_BODY_TIMEOUT_S | 30 | Service: seconds a request body may stall (no bytes arriving) before 408 |
| STREETORDER_MAX_PIXELS | 50000000 | Service: largest image (width x height), read from the header; more is refused with 422 |
| STREETORDER_IMAGE_MEMORY_MB | 1024 | Service: MiB that uploaded images in flight may take together |
| STREETORDER_IMAGE_MEMORY_WAIT_S | 2 | Service: seconds an upload waits for that memory before 503 |
| STREETORDER_BATCHING | true | Service: concurrent requests' images go through the detector together |
| STREETORDER_BATCH_MAX_SIZE | 8 | Service: images per detector call at most |
| STREETORDER_BATCH_MAX_WAIT_MS | 4 | Service: milliseconds the oldest image may wait for a batch to fill |
| STREETORDER_BATCH_QUEUE_SIZE | 64 | Service: images that may wait for the detector before 503 |
| STREETORDER_RETRY_AFTER_S | 1 | Service: the Retry-After of a 503 |
| STREETORDER_LATENCY_BUDGET_S | 2 | Service: seconds an inference request may take; more is refused at once with 503 |
| STREETORDER_INFERENCE_THREADS | 8 | Service: threads for the blocking parts of inference requests |
| STREETORDER_FORWARDED_ALLOW_IPS | (none) | Service: reverse proxies whose X-Forwarded-For is believed |
| STREETORDER_EVIDENCE_DIR | var/engine-evidence | Service: where the engine writes evidence before the ledger stores it |
| STREETORDER_JOURNAL | var/report-journal.jsonl | Service: reports the ledger could not take yet, replayed on start |
| STREETORDER_KEY_CACHE | api-keys-last-seen.json beside the journal | Service: API keys (hashes) active when the database was last seen, for a start during an outage |
| STREETORDER_STATE_EVERY_S | 10 | Service: frame seconds between checkpoints of a camera's engine state to the ledger (frames with reports: always) |
| STREETORDER_RETRY_INTERVAL_S | 2 | Service: seconds between attempts to post queued reports |
| STREETORDER_MAX_CLOCK_SKEW_S | 300 | Service: frames taken more than this far in the future are refused |
| STREETORDER_EARLIEST_TAKEN_AT | 2000-01-01T00:00:00Z | Service: frames taken before it are refused |
| STREETORDER_STREAMS | true | Service: read the cameras' `stream:` itself (a reader and an intake thread per camera); false: frames only from POST /frames |
| STREETORDER_PUBLIC_URL | unset | Service: how clients reach the service; sets the ledger's evidence base URL |
| STREETORDER_RAY_REPLICAS | 1 | Service on Ray (`serve --ray`): detector replicas |
| STREETORDER_RAY_REPLICA_CPUS | 1 | Service on Ray: CPUs each detector replica reserves |
| STREETORDER_RAY_CAMERA_CPUS | 0.05 | Service on Ray: CPUs each camera owner actor (a shard of cameras) reserves |
| STREETORDER_RAY_OWNERS | ceil(cameras / 32) | Service on Ray: owner actors the cameras are shared among (rendezvous hashing of the camera id) |
| STREETORDER_RAY_CAMERAS_PER_OWNER | 32 | Service on Ray: cameras per owner when STREETORDER_RAY_OWNERS is unset |
| STREETORDER_RAY_PLACEMENT_WAIT_S | 10 | Service on Ray: seconds a frame waits for its camera's owner actor to be placed before 503 |
| STREETORDER_RAY_JOURNAL_DIR | var/camera-journals | Service on Ray: the cameras' report journals, on the node serve runs on |
| STREETORDER_RAY_HEARTBEAT_S | 0.25 | Service on Ray: how often detector replicas report and ask which model to serve |

The test suite alone also reads STREETORDER_TEST_PG (tests/conftest.py): the PostgreSQL admin database it
creates its test databases in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from ..paths import MODELS_DIR

ENV_PREFIX = "STREETORDER_"


def env_name(field_name: str, field: FieldInfo) -> str | None:
    """The variable a field is read from: `STREETORDER_<FIELD>`, unless the field names another in
    `json_schema_extra={"env": ...}` (None: never from the environment)."""
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    return extra["env"] if "env" in extra else ENV_PREFIX + field_name.upper()


class _Environment(EnvSettingsSource):
    """pydantic-settings' environment source, with each field's variable named by `env_name`."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        name = env_name(field_name, field)
        return (self.env_vars.get(name) if name else None), field_name, False


class EnvSettings(BaseSettings):
    """The base of each process's settings: defaults, then `STREETORDER_*` variables, then arguments (flags)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, case_sensitive=True, env_ignore_empty=True, extra="forbid", frozen=True)
    what: ClassVar[str] = "streetorder"  # names the settings in a validation error

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource, env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource, file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, _Environment(settings_cls)  # no .env file, no secrets folder

    @classmethod
    def env_names(cls) -> dict[str, str]:
        """Field name → environment variable, for the fields read from the environment."""
        return {name: var for name, f in cls.model_fields.items() if (var := env_name(name, f))}

    @classmethod
    def load(cls, **flags: Any):
        """Defaults, then the environment, then `flags` (None means 'not given'); an invalid value names its variable."""
        try:
            return cls(**{k: v for k, v in flags.items() if v is not None})
        except ValidationError as e:
            names = cls.env_names()
            lines = [f"{'.'.join(map(str, err['loc']))} ({names.get(str(err['loc'][0]), 'flag')}): {err['msg']}" for err in e.errors()]
            raise ValueError(f"invalid {cls.what} settings:\n  " + "\n  ".join(lines)) from None


class PipelineSettings(EnvSettings):
    """What the command line, the night job and the retraining loop read from the environment. Build one where a
    value is needed (`PipelineSettings().models`): it reads the environment then."""

    db: str | None = Field(None, title="Database URL", description="Ledger database URL; overrides the ledger config's database_url (a --db flag wins)")
    ledger_config: Path | None = Field(None, title="Ledger config", description="Ledger config YAML (a --ledger flag wins); unset: STREETORDER_CONFIG, else the built-in defaults")
    config: Path | None = Field(None, title="Ledger config (old name)", description="The earlier name of STREETORDER_LEDGER_CONFIG, still read")
    webhook_secret: SecretStr | None = Field(None, title="Webhook secret", description="Overrides the ledger config's webhook.secret")
    models: Path = Field(MODELS_DIR, title="Models directory", description="One folder per model version, plus CURRENT naming the one in use")
    classes: Path | None = Field(None, title="Added classes", description="The classes annotators add beyond the model's; unset: datasets/classes.yaml")
    samples: Path | None = Field(None, title="Samples root", description="Root of the labelled sample versions; unset: var/samples")
    frame_pool: str | None = Field(None, title="Frame pool", description="Frame pool folder, or off/0/false/none to turn the pool off; unset: var/frames")
    auto_variants: bool = Field(
        True, title="Auto serves variants",
        description="Whether `--backend auto` also times and serves the INT8/bf16 variants the accuracy gate accepted (card.json); false: "
        "f32 only (onnxruntime or OpenVINO), e.g. to compare with figures taken before the variants",
    )
    backend_cache: str | None = Field(None, title="Backend choice cache", description="JSON file where `--backend auto` keeps its choice per model file, thread count and CPU, or off/0/false/none to choose anew in each process; unset: var/backend-auto.json")
    night_streams: str | int = Field(
        "auto", title="Night detector streams",
        description="Night job: detector batches run at once in each worker, beside the decoding (a --streams flag wins); auto: one single-threaded stream per core of the worker, at most 4; 0: the detector in the decoding thread",
    )

    @field_validator("night_streams", mode="before")
    @classmethod
    def _streams(cls, value: object) -> str | int:
        from ..detect.streams import parse_streams

        return parse_streams(value, minimum=0)

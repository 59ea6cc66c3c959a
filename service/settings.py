"""The service's settings: one pydantic-settings model, filled from `STREETORDER_*` environment variables and then
from command-line flags (`streetorder serve --help`), so a container and a shell start it the same way.

Each field is read from `STREETORDER_<FIELD>` (`models_dir` from $STREETORDER_MODELS); pipeline/config/settings.py
lists every variable. The names reuse the ledger's and the model registry's variables where they exist
($STREETORDER_DB, $STREETORDER_MODELS; $STREETORDER_CONFIG stays the ledger config), so one environment drives
every command.
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

from pydantic import AwareDatetime, Field, SecretStr, field_validator

from pipeline.cases.config import LedgerConfig
from pipeline.config.settings import EnvSettings
from pipeline.detect import models_dir
from pipeline.source.images import MAX_PIXELS
from pipeline.paths import SAMPLE_CONFIG


class ServiceSettings(EnvSettings):
    """Everything `create_app` needs. Paths are taken as given (relative to the working directory).
    `ServiceSettings.load(**flags)`: defaults, then the environment, then flags."""

    what: ClassVar[str] = "service"

    camera_config: Path = Field(
        SAMPLE_CONFIG, title="Camera config", description="Cameras, zones, rules (YAML); re-read on change, no restart",
    )
    ledger_config: Path | None = Field(
        None, title="Ledger config", description="Rectification ledger settings (YAML); unset: $STREETORDER_CONFIG, else the built-in defaults",
    )
    ledger: LedgerConfig | None = Field(
        None, title="Ledger", description="A ready ledger config (tests, embedding); replaces ledger_config", json_schema_extra={"env": None},  # never from the environment
    )
    db: str | None = Field(None, title="Database URL", description="Overrides the ledger's database_url")
    model: str | None = Field(
        None, title="Model", description="Model name under models_dir, a model folder, or an .onnx file; unset: the one models/CURRENT names",
    )
    models_dir: Path = Field(default_factory=models_dir, title="Models directory", description="One folder per model version, plus CURRENT", json_schema_extra={"env": "STREETORDER_MODELS"})
    persist_model: bool = Field(
        False, title="Persist model choice", description="PUT /models/current also rewrites models_dir/CURRENT, so a restart keeps the choice",
    )
    model_watch_s: float = Field(
        2.0, ge=0, title="Follow CURRENT every (s)", description="While serving models/CURRENT (no explicit model), re-read it this often and swap to a newly promoted or rolled-back model with no restart; 0: never",
    )
    warm_up_s: float = Field(
        30.0, ge=0, title="Warm-up budget (s)",
        description="At each model load, build the input shapes every configured camera's frames need (OpenVINO compiles one per rectangle) before the model serves, for at most this long; 0: off, each shape compiles on its first frame",
    )
    conf: float = Field(0.25, ge=0.01, le=1, title="Detector score floor", description="Detections below it never reach the engine; /detect cannot go lower")
    imgsz: int | None = Field(None, ge=32, title="Inference size", description="Pixels (multiple of 32); unset: the model's own")
    threads: int | None = Field(None, ge=1, title="ONNX threads", description="Intra-op threads of each detector stream; unset: the cores shared out between the streams (one stream: the runtime's default, all cores)")
    inference_streams: str | int = Field(
        "auto", title="Detector streams",
        description="Micro-batches the detector runs at once, each on its own thread (`auto` or a number); auto: one stream per 4 cores, so that a lone request keeps its threads",
    )
    # ---- auth (roles, sessions, login limits) ----
    api_key: SecretStr | None = Field(
        None, title="Legacy master key",
        description="Deprecated: still accepted as an admin key (with a warning) until role keys replace it; create them with `streetorder keys create`",
    )
    insecure_open: bool = Field(
        False, title="Insecure open mode", description="Start with no API keys at all and leave every route open (for a laptop demo, never a city network)",
    )
    evidence_public: bool = Field(
        False, title="Public evidence", description="Serve /evidence without a key: its URLs are unguessable sha256 names, as linked in outbound case messages",
    )
    session_hours: float = Field(8, gt=0, le=24 * 30, title="Review session length", description="Hours a review-page login lasts")
    auth_failures_per_address: int = Field(
        10, ge=1, title="Failed logins per address", description="Failed authentications one client address may make per window before it gets 429",
    )
    auth_failures_global: int = Field(
        100, ge=1, title="Failed logins overall", description="Failed authentications of all clients per window before the review login form answers 429 to everyone",
    )
    auth_window_s: float = Field(300, gt=0, title="Failure window", description="Seconds a failed authentication counts against the limits")
    max_upload_bytes: int = Field(20 * 1024 * 1024, ge=1024, title="Upload limit", description="Largest request body in bytes; more is refused with 413")
    body_timeout_s: float = Field(
        30.0, gt=0, le=3600, title="Body timeout", description="Seconds a request body may stall (no bytes arriving while more are due) before 408 and a closed connection",
    )
    max_pixels: int = Field(
        MAX_PIXELS, ge=1, title="Pixel limit", description="Largest image in pixels (width x height), read from the header before anything is decoded; more is refused with 422",
    )
    image_memory_mb: int = Field(
        1024, ge=16, title="Image memory budget", description="MiB that uploaded images may take together while decoded and processed (about 14 bytes a pixel at the decode's peak); "
        "the service's RSS stays under its baseline (the loaded models) plus this. A request that does not fit waits `image_memory_wait_s`, then gets 503 with Retry-After",
    )
    image_memory_wait_s: float = Field(2.0, ge=0, le=60, title="Image memory wait", description="Seconds an upload waits for the image memory budget before 503")
    batching: bool = Field(True, title="Micro-batching", description="Concurrent requests' images go through the detector together; off: each request runs it alone")
    batch_max_size: int = Field(8, ge=1, le=64, title="Largest batch", description="Images per detector call at most")
    batch_max_wait_ms: float = Field(
        4.0, ge=0, le=1000, title="Batch wait", description="Milliseconds the oldest image may wait for a batch to fill; only while other requests are still decoding",
    )
    batch_queue_size: int = Field(64, ge=1, title="Detector queue", description="Images that may wait for the detector; more are refused with 503 and Retry-After")
    latency_budget_s: float = Field(
        2.0, gt=0, le=600, title="Inference latency budget",
        description="Seconds an inference request (/detect, /frames, /photos) may take: one the detector cannot answer within it (estimated from the measured "
        "time per image and the requests in flight) is refused at once with 503 and Retry-After, before its image is decoded; a camera resends the frame",
    )
    inference_threads: int = Field(
        8, ge=1, le=256, title="Inference threads",
        description="Threads for the blocking parts of inference requests (decode, boxes, the engine); they never wait for the detector, and the reviewer and admin routes keep their own pool",
    )
    forwarded_allow_ips: str | None = Field(
        None, title="Trusted proxies",
        description="Comma-separated addresses or networks (or *) of reverse proxies whose X-Forwarded-For and X-Forwarded-Proto are believed; unset: none, "
        "the client address is the connection's (the per-address login limit cannot be reset with a header)",
    )
    retry_after_s: int = Field(1, ge=1, le=3600, title="Retry-After", description="Seconds a client shed with 503 is told to wait")
    evidence_dir: Path = Field(
        Path("var/engine-evidence"), title="Engine evidence directory", description="Where the engine writes evidence before the ledger stores it by content",
    )
    journal: Path = Field(
        Path("var/report-journal.jsonl"), title="Report journal",
        description="Append-only, fsync'ed file of incident reports and frame times the ledger could not take yet (database down); replayed first on start",
    )
    key_cache: Path | None = Field(
        None, title="Key cache",
        description="The API keys (SHA-256 only, mode 0600) active when the ledger database was last seen, so the service starts and knows its keys during an outage (PostgreSQL ledgers only); unset: api-keys-last-seen.json beside the journal",
    )
    state_every_s: float = Field(
        10.0, gt=0, le=3600, title="Camera state interval",
        description="Frame seconds between checkpoints of a camera's engine state (tracks, dwell timers, open incidents) to the ledger when its frames post nothing; "
        "a frame that posts reports is always checkpointed with them. A crash costs a camera at most this much of its tracks' history",
    )
    retry_interval_s: float = Field(2.0, gt=0, le=3600, title="Retry interval", description="Seconds between attempts to post the queued reports while the ledger is unavailable")
    max_clock_skew_s: float = Field(
        300.0, ge=0, title="Allowed clock skew", description="A frame or photo taken more than this many seconds after the service's clock is refused (422), never stored",
    )
    earliest_taken_at: AwareDatetime = Field(
        datetime(2000, 1, 1, tzinfo=UTC), title="Earliest capture time", description="Frames and photos taken before it are refused (422): a camera or phone with a reset clock",
    )
    # ---- on a Ray cluster (`streetorder serve --ray`, service/cluster/) ----
    ray_replicas: int = Field(1, ge=1, le=4096, title="Detector replicas", description="`serve --ray`: detector replicas (Ray Serve deployment), spread over the cluster's nodes")
    ray_replica_cpus: float = Field(1.0, gt=0, le=256, title="CPUs per detector replica", description="`serve --ray`: CPUs each detector replica reserves (Ray places no more replicas on a node than it has CPUs for)")
    ray_camera_cpus: float = Field(
        0.05, gt=0, le=64, title="CPUs per camera owner",
        description="`serve --ray`: CPUs each camera owner actor (a shard of cameras) reserves (its cameras' engines and ledger writes); with the nodes' CPUs it bounds how many owners the cluster places",
    )
    ray_owners: int | None = Field(
        None, ge=1, le=100_000, title="Camera owners",
        description="`serve --ray`: owner actors the cameras are shared among (rendezvous hashing of the camera id: stable); unset: one per `ray_cameras_per_owner` configured cameras",
    )
    ray_cameras_per_owner: int = Field(
        32, ge=1, le=10_000, title="Cameras per owner", description="`serve --ray`, `ray_owners` unset: the owner count is ceil(cameras / this)",
    )
    ray_placement_wait_s: float = Field(
        10.0, gt=0, le=600, title="Camera placement wait",
        description="`serve --ray`: seconds a camera's frame waits for its owner actor to be placed; past it the frame is refused with 503 and Retry-After (the cluster is full)",
    )
    ray_journal_dir: Path = Field(
        Path("var/camera-journals"), title="Camera journals",
        description="`serve --ray`: on the node `serve --ray` runs on (the head): each camera's report journal and, while the ledger is down, its newest state, kept by the journal actor pinned there",
    )
    ray_heartbeat_s: float = Field(
        0.25, gt=0, le=60, title="Replica heartbeat", description="`serve --ray`: how often each detector replica reports to the model rollout and asks which model to serve (bounds a swap's rollout)",
    )
    streams: bool = Field(
        True, title="Pull streams", description="Read the cameras' `stream:` (RTSP or HTTP snapshots) on two threads per camera (its reader and its intake); off: frames come only from POST /frames",
    )
    public_url: str | None = Field(
        None, title="Public base URL", description="How clients reach this service, e.g. https://streetorder.city.example; sets the ledger's evidence_base_url",
    )

    @field_validator("inference_streams", mode="before")
    @classmethod
    def _streams(cls, v: object) -> str | int:
        from pipeline.detect.streams import parse_streams

        return parse_streams(v)

    @field_validator("public_url")
    @classmethod
    def _http(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError(f"public_url must start with http:// or https://, got {v!r}")
        return v.rstrip("/") if v else v

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _addresses(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        items = [item.strip() for item in v.split(",") if item.strip()]
        for item in items:
            if item == "*":
                continue
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"forwarded_allow_ips: {item!r} is not an IP address or network (e.g. 10.0.0.5, 10.0.0.0/8, ::1 or *)") from None
        return ",".join(items)

    @field_validator("imgsz")
    @classmethod
    def _multiple_of_32(cls, v: int | None) -> int | None:
        if v is not None and v % 32:
            raise ValueError(f"imgsz must be a multiple of 32, got {v}")
        return v

    def key_cache_path(self) -> Path:
        return self.key_cache or self.journal.with_name("api-keys-last-seen.json")

    def ledger_settings(self) -> LedgerConfig:
        """The ledger config this service uses, with the database and evidence URL overrides applied."""
        cfg = self.ledger or LedgerConfig.load(self.ledger_config, database_url=self.db)
        if self.ledger is not None and self.db:
            cfg = cfg.model_copy(update={"database_url": self.db})
        if self.public_url:
            cfg = cfg.model_copy(update={"evidence_base_url": f"{self.public_url}/evidence/"})
        return cfg

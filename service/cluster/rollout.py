"""Model swaps across the cluster: the model to serve is a desired state, and every detector replica converges on it.

`ModelRollout` is one named actor on the head node. It holds the desired model (a name and a generation that
grows with each change) and the replicas' heartbeats. `PUT /models/current` sets a new generation (after the
ingress loaded the model once to refuse a wrong name or a broken file with 404/422, as the one-process service
does); `streetorder promote`/`rollback` rewrite models/CURRENT, which the rollout follows when the service was
started without `--model`. Each replica asks every `ray_heartbeat_s` (`detector_replica.py`), loads a new model
completely, then swaps it in one assignment and reports the generation it serves. The PUT answers once every
live replica serves the new generation (or said why it could not): the rollout time is the heartbeat plus the
slowest replica's load, reported in `streetorder_model_rollout_seconds`.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from pipeline.detect.registry import current_name

log = logging.getLogger(__name__)

ROLLOUT_NAME = "models"  # the actor's name in calls.NAMESPACE


@dataclass(frozen=True)
class Desired:
    generation: int
    name: str | None  # None: no model chosen and no models/CURRENT
    set_at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class ServedModel:
    """The model a replica serves, as GET /models/current and the metrics describe it."""

    name: str
    path: str
    classes: tuple[str, ...]
    imgsz: int | None
    backend: str
    loaded_at: datetime


@dataclass(frozen=True)
class ReplicaStatus:
    """A replica's heartbeat: where it runs, what it serves, and its counters since it started."""

    replica: str
    node: str
    generation: int  # the desired generation it last applied (served, or failed to load: `error`)
    model: ServedModel | None
    error: str | None
    images: int = 0
    batches: int = 0
    detect_s: float = 0.0
    applied_at: float = 0.0  # wall time the generation was applied (its model swapped in)


class ModelRollout:
    """The Ray actor (see the module doc). Called concurrently: the replicas' heartbeats and the follower thread."""

    def __init__(self, models_dir: str, model: str | None, follow_s: float) -> None:
        self.models_dir = Path(models_dir)
        self._lock = threading.Lock()
        self._seen = self._pointer()
        self.desired = Desired(1, model if model is not None else self._seen)
        self._replicas: dict[str, tuple[float, ReplicaStatus]] = {}
        if model is None and follow_s > 0:
            threading.Thread(target=self._follow, args=(follow_s,), name="follow-CURRENT", daemon=True).start()

    def _pointer(self) -> str | None:
        try:
            return current_name(self.models_dir)
        except (FileNotFoundError, OSError, ValueError):
            return None

    def _follow(self, interval: float) -> None:
        while True:
            time.sleep(interval)
            name = self._pointer()
            with self._lock:
                if name is not None and name != self._seen:
                    self._seen = name
                    if name != self.desired.name:
                        log.info("models/CURRENT now names %s: rolling it out", name)
                        self.desired = Desired(self.desired.generation + 1, name)

    def want(self) -> Desired:
        return self.desired

    def set(self, name: str, persisted: bool = False) -> Desired:
        """A new generation serving `name`; `persisted`: the caller rewrote models/CURRENT to it (not a change to follow)."""
        with self._lock:
            if persisted:
                self._seen = name
            self.desired = Desired(self.desired.generation + 1, name)
            return self.desired

    def report(self, status: ReplicaStatus) -> Desired:
        """A replica's heartbeat; answers what it should serve."""
        with self._lock:
            self._replicas[status.replica] = (time.monotonic(), status)
            return self.desired

    def replicas(self, max_age_s: float) -> list[ReplicaStatus]:
        """The replicas heard from within `max_age_s` (older ones are gone: a replica stopped or its node died)."""
        now = time.monotonic()
        with self._lock:
            for key in [k for k, (seen, _) in self._replicas.items() if now - seen > max_age_s * 4]:
                del self._replicas[key]
            return sorted((s for seen, s in self._replicas.values() if now - seen <= max_age_s), key=lambda s: s.replica)

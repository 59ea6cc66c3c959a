"""A detector replica of the cluster: one model (the rollout's desired one, `rollout.py`) behind Ray Serve's
batching, so concurrent frames of many cameras go through the model together.

Replicas are a Ray Serve deployment (`serve_app.py`: `ray_replicas` of them, `ray_replica_cpus` each); Serve
spreads them over the nodes and starts a lost one again elsewhere. A batch reads the model reference once, so
every image of it is seen by the same model; a swap loads the new model completely first (as `ModelSlot` does
in one process) and never waits for a batch.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass

import numpy as np
import supervision as sv
from ray import serve

from pipeline.config import CameraConfig, ConfigSource
from pipeline.detect import DetectorSettings
from pipeline.detect.plan import frame_detector

from ..runtime.detector import camera_warm_up
from ..runtime.errors import ServiceError
from ..runtime.model_slot import LoadedModel, ModelSlot
from ..settings import ServiceSettings
from .rollout import Desired, ReplicaStatus, ServedModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Detected:
    """One image's detections, the model that found them, and the batch it went in (for the metrics)."""

    model: str
    detections: sv.Detections
    batch_s: float
    batch_size: int
    replica: str


class DetectorReplica:
    def __init__(self, settings: ServiceSettings, rollout) -> None:
        import ray

        self.rollout = rollout
        self.replica = serve.get_replica_context().replica_id.unique_id
        self.node = ray.get_runtime_context().get_node_id()
        self.heartbeat_s = settings.ray_heartbeat_s
        warm = camera_warm_up(settings, ConfigSource(settings.camera_config))  # the cameras as this replica starts: frames of any may come here
        self.models = ModelSlot(settings.models_dir, DetectorSettings(conf=settings.conf, imgsz=settings.imgsz), settings.threads, warm=warm)
        self.generation = 0
        self.applied_at = 0.0
        self.images = self.batches = 0
        self.detect_s = 0.0
        self._batched.set_max_batch_size(settings.batch_max_size if settings.batching else 1)
        self._batched.set_batch_wait_timeout_s(settings.batch_max_wait_ms / 1000)
        self._apply(ray.get(rollout.want.remote()))
        threading.Thread(target=self._heartbeat, name="rollout-heartbeat", daemon=True).start()

    # ---- the model ----------------------------------------------------------------------------------

    def _apply(self, desired: Desired) -> None:
        """Serve the desired generation: load its model fully, then swap the reference (a failure keeps the old one)."""
        if desired.generation == self.generation:
            return
        if desired.name is None:
            self.models.error = "no model chosen and no models/CURRENT; choose one with PUT /models/current"
        else:
            try:
                new = self.models.load(desired.name)
                self.models.current, self.models.error = new, None
                log.info("replica %s serves %s (generation %d)", self.replica, new.name, desired.generation)
            except ServiceError as e:
                self.models.error = f"model '{desired.name}' did not load; still serving {self.models.current.name if self.models.current else 'nothing'}: {e.detail}"
                log.error(self.models.error)
        self.generation, self.applied_at = desired.generation, time.time()

    def status(self) -> ReplicaStatus:
        model = self.models.current
        served = None if model is None else _served(model)
        return ReplicaStatus(self.replica, self.node, self.generation, served, self.models.error, self.images, self.batches, self.detect_s, self.applied_at)

    def _heartbeat(self) -> None:
        """Report and ask every `heartbeat_s`; a new generation loads on a thread of its own, so the replica keeps
        reporting (as not yet there) while a slow load runs, and the rollout waits for it rather than losing it."""
        import ray

        loading: threading.Thread | None = None
        while True:
            try:
                desired = ray.get(self.rollout.report.remote(self.status()), timeout=30)
                if desired.generation != self.generation and (loading is None or not loading.is_alive()):
                    loading = threading.Thread(target=self._apply, args=(desired,), name="model-load", daemon=True)
                    loading.start()
            except Exception as e:  # the rollout is restarting: keep serving what we have
                log.warning("model rollout heartbeat failed: %s", e)
            time.sleep(self.heartbeat_s)

    # ---- detection ----------------------------------------------------------------------------------

    async def detect(self, image: np.ndarray, camera: CameraConfig | None) -> Detected:
        """`image` through the model serving now, in a batch with whatever else arrives meanwhile; `camera`
        decides cue model and tiles (`detect.plan`), None for a patrol photo."""
        return await self._batched((image, camera))

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.004)
    async def _batched(self, items: list[tuple[np.ndarray, CameraConfig | None]]) -> list[Detected]:
        model = self.models.require()  # one read: the whole batch sees one model
        return await asyncio.to_thread(self._run, model, items)

    def _run(self, model: LoadedModel, items: list[tuple[np.ndarray, CameraConfig | None]]) -> list[Detected]:
        started = time.perf_counter()
        groups: dict[int, tuple[object, list[int]]] = {}
        for i, (image, camera) in enumerate(items):  # images that share a detector object run as one call
            det = frame_detector(model.detector, camera, image)
            groups.setdefault(id(det), (det, []))[1].append(i)
        found: list[sv.Detections | None] = [None] * len(items)
        for det, idx in groups.values():
            for i, d in zip(idx, det.detect([items[i][0] for i in idx])):
                found[i] = d
        took = time.perf_counter() - started
        self.images += len(items)
        self.batches += 1
        self.detect_s += took
        return [Detected(model.name, d, took, len(items), self.replica) for d in found]


def _served(model: LoadedModel) -> ServedModel:
    det = model.detector
    return ServedModel(model.name, str(model.path), tuple(det.names), getattr(det, "imgsz", None), str(getattr(det, "backend", "?")), model.loaded_at)

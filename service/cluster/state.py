"""The ingress's side of the cluster: the same parts `ServiceState` composes (`detector`, `live`, `metrics`, the
ledger link and store), each a front for the cluster's actors, so the app of `service/http/app.py`, its routes,
roles, limits, review page and schema, runs unchanged on top (`create_app(settings, open_state)`).

- `detector.models`: the model the replicas serve, from their heartbeats (`rollout.py`); a swap is rolled out to
  every replica and answered once all serve it.
- `detector.batcher`: /detect and /photos images go to a replica (the replicas batch; nothing is batched here).
- `live`: a camera frame goes to its camera's owner (`camera_owner.py`), which detects, runs the engine and
  writes the ledger; the route awaits the owner's reply on the event loop (no thread waits).
- `detector.admission` and the decode budget work as in one process, on the ingress's own uploads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import supervision as sv
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from pipeline.config import ConfigSource
from pipeline.detect import DetectorSettings
from pipeline.domain import GeoPoint, Location

from ..runtime.admission import Admission
from ..runtime.cameras import Cameras
from ..runtime.decode_budget import DecodeBudget
from ..runtime.errors import Unavailable
from ..runtime.ledger import LedgerLink
from ..runtime.live import Processed, check_taken_at
from ..runtime.metrics import ServiceMetrics
from ..runtime.model_slot import LoadedModel, ModelSlot
from ..runtime.state import ServiceState
from ..settings import ServiceSettings
from .calls import camera_key, owner_count, unwrap
from .camera_owner import Reply
from .detector_replica import Detected
from .owners import CameraOwners
from .rollout import ReplicaStatus

log = logging.getLogger(__name__)

ROLLOUT_WAIT_S = 120.0  # how long a PUT /models/current waits for every replica to serve the new model
OWNERS_EVERY_S = 2.0  # how often the ingress asks every camera owner how it goes


@dataclass(frozen=True)
class ModelFacts:
    """What the routes read of a detector the replicas hold (`LoadedModel.detector` in one process)."""

    names: tuple[str, ...]
    imgsz: int | None
    backend: str


@dataclass
class ModelName:
    """The model that saw an image, known once a replica answered."""

    name: str


# ---- the detector -------------------------------------------------------------------------------------


class ClusterModels:
    """`ModelSlot`'s face for the routes, over the replicas (see `rollout.py`)."""

    def __init__(self, settings: ServiceSettings, rollout) -> None:
        self.rollout = rollout
        self.slot = ModelSlot(settings.models_dir, DetectorSettings(conf=settings.conf, imgsz=settings.imgsz), settings.threads, settings.persist_model)
        self.models_dir = self.slot.models_dir
        self.heartbeat_s = settings.ray_heartbeat_s
        self.alive_s = max(5.0, settings.ray_heartbeat_s * 10)  # a replica not heard from for longer is gone
        self.last_rollout_s: float | None = None
        self._cache: tuple[float, list[ReplicaStatus]] = (0.0, [])
        self._lock = threading.Lock()

    def replicas(self, fresh: bool = False) -> list[ReplicaStatus]:
        """The live replicas' heartbeats (cached for a heartbeat)."""
        import ray

        with self._lock:
            at, statuses = self._cache
            if fresh or time.monotonic() - at > self.heartbeat_s:
                try:
                    statuses = ray.get(self.rollout.replicas.remote(self.alive_s), timeout=10)
                except Exception as e:
                    log.warning("the model rollout did not answer: %s", e)
                self._cache = (time.monotonic(), statuses)
            return statuses

    @property
    def current(self) -> LoadedModel | None:
        """The model of the newest generation any live replica serves."""
        serving = [s for s in self.replicas() if s.model is not None]
        if not serving:
            return None
        m = max(serving, key=lambda s: (s.generation, s.applied_at)).model
        return LoadedModel(name=m.name, path=Path(m.path), detector=ModelFacts(m.classes, m.imgsz, m.backend), loaded_at=m.loaded_at)

    @property
    def error(self) -> str | None:
        statuses = self.replicas()
        if not statuses:
            return "no detector replica has reported yet (starting, or none can be placed)"
        errors = sorted({s.error for s in statuses if s.error})
        return "; ".join(errors) or None

    def require(self) -> LoadedModel:
        model = self.current
        if model is None:
            raise Unavailable(f"no model loaded ({self.error or 'none configured'}); choose one with PUT /models/current")
        return model

    def names(self) -> list[str]:
        return self.slot.names()

    def current_pointer(self) -> str | None:
        return self.slot.current_pointer()

    def swap(self, name: str, persist: bool | None = None) -> LoadedModel:
        """Load `name` once here (404/422 as in one process, and nothing changes), then roll it out and wait
        until every live replica serves it; `last_rollout_s` is how long that took."""
        import ray

        self.slot.check_name(name)
        self.slot.load(name)  # refuses a wrong name or a broken file before any replica is touched
        persisted = self.slot.persist if persist is None else persist
        if persisted:
            self.slot.write_pointer(name)
        started = time.monotonic()
        before = {s.replica for s in self.replicas(fresh=True)}
        desired = ray.get(self.rollout.set.remote(name, persisted), timeout=30)
        deadline = started + ROLLOUT_WAIT_S
        while True:  # every replica alive when the swap began serves it, or is gone (a replica started since loads it first)
            statuses = self.replicas(fresh=True)
            behind = [s for s in statuses if s.generation < desired.generation and (s.replica in before or not before)]
            if statuses and not behind:
                break
            if time.monotonic() > deadline:
                raise Unavailable(f"model '{name}' was not rolled out to {len(behind)} of {len(statuses)} replica(s) within {ROLLOUT_WAIT_S:g} s; they keep trying")
            time.sleep(min(0.05, self.heartbeat_s / 4))
        self.last_rollout_s = time.monotonic() - started
        failed = [s for s in statuses if s.model is None or s.model.name != name]
        if failed:
            raise Unavailable(f"model '{name}' loaded here but not on {len(failed)} replica(s): {'; '.join(sorted({s.error or '?' for s in failed}))}")
        log.info("model %s rolled out to %d replica(s) in %.2f s", name, len(statuses), self.last_rollout_s)
        return self.require()

    def stop(self) -> None:
        pass


class RemotePending:
    """An image at a detector replica, awaited on the event loop (`Pending`'s face for /detect and /photos)."""

    def __init__(self, response, model: ModelName, retry_after_s: int, observe: Callable[[Detected], None]) -> None:
        self.response, self.model, self.retry_after_s, self.observe = response, model, retry_after_s, observe

    async def wait(self) -> Detected:
        try:
            return await self.response
        except Exception as e:
            raise unwrap(e, "a detector replica", self.retry_after_s) from None

    @staticmethod
    def finished(raw: Detected) -> bool:
        """The replica made the boxes: `finish` only notes the model, so the route answers on the event loop."""
        return True

    def finish(self, raw: Detected) -> sv.Detections:
        self.model.name = raw.model
        self.observe(raw)
        return raw.detections

    def close(self) -> None:
        pass


class RemoteBatcher:
    """Images to the replicas: they batch (Ray Serve's `@serve.batch`); nothing waits here."""

    def __init__(self, handle, retry_after_s: int, observe: Callable[[Detected], None]) -> None:
        self.handle, self.retry_after_s, self.observe = handle, retry_after_s, observe

    def incoming(self):
        return nullcontext()

    def submit(self, detector, image: np.ndarray, model: str = "") -> RemotePending:
        return RemotePending(self.handle.detect.remote(image, None), ModelName(model), self.retry_after_s, self.observe)

    def depth(self) -> int:
        return 0

    def close(self) -> None:
        pass


class ClusterDetector:
    """`DetectorRuntime`'s parts, for the ingress (see the module doc)."""

    def __init__(self, settings: ServiceSettings, handle, rollout, metrics: ServiceMetrics) -> None:
        self.models = ClusterModels(settings, rollout)
        self.metrics = metrics
        self.batcher = RemoteBatcher(handle, settings.retry_after_s, self.observe)
        self.budget = DecodeBudget(settings.image_memory_mb * 2**20, settings.image_memory_wait_s, settings.retry_after_s, metrics)
        # the admission sees the cluster's detector as one: `ray_replicas` times the throughput of one replica
        self.admission = Admission(
            settings.latency_budget_s, settings.inference_threads, metrics, retry_after_s=settings.retry_after_s,
            cold_limit=settings.batch_max_size * settings.ray_replicas,
        )
        self.admission.watch()
        self.replicas = settings.ray_replicas

    def model_info(self) -> tuple[str, str] | None:
        model = self.models.current
        return (model.name, model.detector.backend) if model else None

    def observe(self, found: Detected) -> None:
        """A replica's batch, as the reply of one of its images told it: the detector histograms, and the
        admission's cost of one image (the replicas together are `replicas` times one)."""
        if not found.batch_size:
            return
        self.metrics.inference.labels(found.model).observe(found.batch_s)
        self.metrics.batch_size.labels(found.model).observe(found.batch_size)
        self.admission.observe_detector(found.batch_s / self.replicas, found.batch_size)


# ---- frames and photos ----------------------------------------------------------------------------------


@dataclass
class ClusterJob:
    """A camera frame at its owner, between `begin_frame` and `end_frame` (`FrameJob`'s face for the route)."""

    camera_id: str
    at: datetime
    image: np.ndarray
    pending: OwnerCall

    def abandon(self) -> None:
        pass  # the owner finishes the frame (or refused it); the camera learns which from its order on a resend


class OwnerCall:
    """A frame at its camera's owner, awaited on the event loop."""

    def __init__(self, ref, camera_id: str, owners: CameraOwners, retry_after_s: int) -> None:
        self.ref, self.camera_id, self.owners, self.retry_after_s = ref, camera_id, owners, retry_after_s

    async def wait(self) -> Reply:
        from ray.exceptions import ActorDiedError

        try:
            return await self.ref
        except Exception as e:
            if isinstance(e, ActorDiedError):  # gone for good (killed, or it could not start): the next frame makes a new one
                self.owners.forget(self.camera_id)
            raise unwrap(e, f"{self.owners.name(self.camera_id)} (the owner of {camera_key(self.camera_id)})", self.retry_after_s) from None


class ClusterIntake:
    """`LiveIntake`'s face for the routes: frames to their camera's owner, photos to the patrol's."""

    def __init__(self, settings: ServiceSettings, cameras: Cameras, owners: CameraOwners, detector: ClusterDetector, metrics: ServiceMetrics) -> None:
        self.settings, self.cameras, self.owners, self.detector, self.metrics = settings, cameras, owners, detector, metrics

    @property
    def last_frame(self) -> dict[str, datetime]:
        return {i.camera_id: i.last_frame for i in self.owners.infos() if i.camera_id is not None and i.last_frame is not None}

    @property
    def backlog(self) -> int:
        return sum(i.backlog for i in self.owners.infos())

    @property
    def backlog_error(self) -> str | None:
        errors = [f"{camera_key(i.camera_id)}: {i.backlog_error}" for i in self.owners.infos() if i.backlog_error]
        return "; ".join(errors) or None

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def flush(self) -> None:
        pass  # each owner keeps its own state; `serve --ray` closes them when the service stops

    def check_taken_at(self, at: datetime, what: str = "taken_at") -> None:
        check_taken_at(self.settings, at, what)

    def begin_frame(self, camera_id: str, at: datetime, image: np.ndarray) -> ClusterJob:
        self.check_taken_at(at)
        self.cameras.camera(camera_id)  # 404 before an actor is made for a camera nobody configured
        owner = self.owners.owner(camera_id)
        return ClusterJob(camera_id, at, image, OwnerCall(owner.frame.remote(camera_id, at, image), camera_id, self.owners, self.settings.retry_after_s))

    def end_frame(self, job: ClusterJob, reply: Reply) -> Processed:
        return self._processed(reply, job.image, "frame")

    def begin_photo(self, image: np.ndarray, at: datetime) -> tuple[ModelName, RemotePending]:
        self.check_taken_at(at)
        current = self.detector.models.require()
        pending = self.detector.batcher.submit(current.detector, image, current.name)
        return pending.model, pending

    def end_photo(
        self, model: ModelName, detections: sv.Detections, image: np.ndarray, at: datetime, gps: GeoPoint, place: dict[str, str], source: str,
    ) -> tuple[Processed, Location]:
        import ray

        owner = self.owners.owner(None)
        try:
            reply = ray.get(owner.photo.remote(image, at, gps, place, source, model.name, detections), timeout=120)
        except Exception as e:
            raise unwrap(e, "the patrol photos' owner", self.settings.retry_after_s) from None
        return self._processed(reply, image, "photo"), reply.location

    def _processed(self, reply: Reply, image: np.ndarray, source: str) -> Processed:
        self.owners.note(reply.owner)
        if reply.created:
            self.metrics.cases_created.labels(source).inc(reply.created)
        self.detector.observe(reply.detected)
        return Processed(ModelName(reply.model), reply.result, image.shape[1], image.shape[0])


# ---- the state and its metrics ------------------------------------------------------------------------


class ClusterState(ServiceState):
    """`ServiceState` with the cluster's parts (see the module doc); built in the ingress replica."""

    def __init__(self, settings: ServiceSettings, source: ConfigSource, store, detector: ClusterDetector, metrics: ServiceMetrics, link: LedgerLink, owners: CameraOwners) -> None:
        self.owners = owners
        super().__init__(settings, source, store, detector, metrics, link)
        metrics.registry.register(ClusterFigures(owners, detector.models))

    def _open_live(self) -> ClusterIntake:
        return ClusterIntake(self.settings, self.cameras, self.owners, self.detector, self.metrics)

    def _open_streams(self) -> ClusterStreams:
        return ClusterStreams(self.owners)

    def start(self) -> None:
        """As one process, and every configured camera's owner is created now, in the background: a camera's
        first frame then finds its owner placed and its state restored, rather than paying for both, and a
        streamed camera's owner starts reading its stream. Then every `OWNERS_EVERY_S` the owners are asked how
        they go (/ready's streams, /metrics)."""
        super().start()
        self._stopping = threading.Event()
        threading.Thread(target=self._look_after_owners, name="camera-owners", daemon=True).start()

    def close(self) -> None:
        if getattr(self, "_stopping", None) is not None:
            self._stopping.set()
        super().close()

    def _look_after_owners(self) -> None:
        self._place_owners()
        while not self._stopping.wait(OWNERS_EVERY_S):
            try:
                self.owners.refresh()
            except Exception as e:
                log.warning("asking the camera owners failed: %s", e)

    def _place_owners(self) -> None:
        first = {}  # one camera of each owner, which stands for it
        for camera in self.cameras.config().cameras:
            first.setdefault(self.owners.name(camera.id), camera.id)
        for camera_id in first.values():  # all asked for at once, then waited for
            self.owners.handle(camera_id)
        for name, camera_id in first.items():
            try:
                self.owners.owner(camera_id)
            except Exception as e:  # no room yet (its cameras' frames get 503 until there is), or it failed to start
                log.warning("%s (camera '%s' and others) is not placed yet: %s", name, camera_id, getattr(e, "detail", e))

    @classmethod
    def opener(cls, detector, rollout, keeper):
        """`create_app`'s `open_state` for the cluster whose detector deployment handle, model rollout and journal
        keeper are given."""

        def open_state(settings: ServiceSettings) -> ClusterState:
            source = ConfigSource(settings.camera_config)
            link = LedgerLink(settings.ledger_settings(), settings.retry_interval_s)
            store = link.open_store()
            metrics = ServiceMetrics()
            owners = CameraOwners(settings, detector, keeper, owner_count(settings, len(source.get().cameras)))
            return cls(settings, source, store, ClusterDetector(settings, detector, rollout, metrics), metrics, link, owners)

        return open_state


class ClusterStreams:
    """`StreamWorkers`' face for /ready and /metrics: each camera's owner reads its own stream (`camera_owner.py`)."""

    def __init__(self, owners: CameraOwners) -> None:
        self.owners = owners

    def statuses(self) -> list:
        return sorted((i.stream for i in self.owners.infos() if i.stream is not None), key=lambda st: st.camera_id)

    def outcomes(self) -> dict[str, Counter]:
        return {i.camera_id: Counter(i.stream_outcomes) for i in self.owners.infos() if i.stream is not None}

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


class ClusterFigures:
    """Per-replica and per-camera-owner series for /metrics, read when scraped: the replicas' heartbeats (from
    the rollout) and the owner info the newest reply of each camera brought."""

    def __init__(self, owners: CameraOwners, models: ClusterModels) -> None:
        self.owners, self.models = owners, models

    def collect(self):
        replicas = self.models.replicas()
        labels = ["replica", "node"]
        images = CounterMetricFamily("streetorder_replica_images", "Images a detector replica ran since it started", labels=labels)
        batches = CounterMetricFamily("streetorder_replica_batches", "Batches a detector replica ran since it started", labels=labels)
        busy = CounterMetricFamily("streetorder_replica_detect_seconds", "Seconds a detector replica spent in the model", labels=labels)
        model = GaugeMetricFamily("streetorder_replica_model_info", "The model each replica serves and its rollout generation", labels=[*labels, "model", "generation"])
        for r in replicas:
            key = [r.replica, r.node[:12]]
            images.add_metric(key, r.images)
            batches.add_metric(key, r.batches)
            busy.add_metric(key, r.detect_s)
            model.add_metric([*key, r.model.name if r.model else "", str(r.generation)], 1)
        yield from (images, batches, busy, model)
        yield GaugeMetricFamily("streetorder_replicas", "Detector replicas heard from within their heartbeat", value=len(replicas))
        if self.models.last_rollout_s is not None:
            yield GaugeMetricFamily("streetorder_model_rollout_seconds", "How long the last PUT /models/current took to reach every replica", value=self.models.last_rollout_s)
        infos = self.owners.infos()
        owner = GaugeMetricFamily("streetorder_camera_owner_info", "Which owner actor, node and process own each camera now", labels=["camera", "owner", "node", "pid", "restarted", "restored_from"])
        frames = CounterMetricFamily("streetorder_camera_owner_frames", "Frames the camera's current owner processed for it since it started", labels=["camera", "owner", "node"])
        backlog = GaugeMetricFamily("streetorder_camera_owner_backlog", "Reports journaled by the camera's owner, waiting for the ledger", labels=["camera", "owner"])
        per_node = GaugeMetricFamily("streetorder_cameras_per_node", "Cameras owned by actors on each node", labels=["node"])
        owner_cameras = GaugeMetricFamily("streetorder_owner_cameras", "Cameras each owner actor holds", labels=["owner", "node", "pid"])
        owner_frames = CounterMetricFamily("streetorder_owner_frames", "Frames each owner actor processed since it started, all its cameras", labels=["owner", "node"])
        owner_backlog = GaugeMetricFamily("streetorder_owner_backlog", "Reports journaled by each owner actor, all its cameras", labels=["owner"])
        counts: dict[str, int] = {}
        per_owner: dict[tuple[str, str, str], list[int]] = {}
        for i in infos:
            name = i.camera_id or "patrol"
            owner.add_metric([name, i.owner, i.node[:12], str(i.pid), str(i.restarted).lower(), i.restored_from or ""], 1)
            frames.add_metric([name, i.owner, i.node[:12]], i.frames)
            backlog.add_metric([name, i.owner], i.backlog)
            counts[i.node[:12]] = counts.get(i.node[:12], 0) + 1
            figures = per_owner.setdefault((i.owner, i.node[:12], str(i.pid)), [0, 0, 0])
            figures[0] += 1
            figures[1] += i.frames
            figures[2] += i.backlog
        for node, n in sorted(counts.items()):
            per_node.add_metric([node], n)
        for (name, node, pid), (n, f, b) in sorted(per_owner.items()):
            owner_cameras.add_metric([name, node, pid], n)
            owner_frames.add_metric([name, node], f)
            owner_backlog.add_metric([name], b)
        yield from (owner, frames, backlog, per_node, owner_cameras, owner_frames, owner_backlog)

    def describe(self):
        return []

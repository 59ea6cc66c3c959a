"""The detector side of the runtime: the model serving now (`ModelSlot`, swapped without a restart) and the
micro-batcher that runs it, inside the image memory budget that decodes and waiting detector inputs share.

Detection is the slow part of a request and takes no lock: a request reads the model reference once and hands
its image to the batcher, so a model swap never waits for a frame (nor a frame for a swap).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from pipeline.config import ConfigSource
from pipeline.detect import Detector, DetectorSettings
from pipeline.detect.streams import Parallelism, choose_parallelism
from pipeline.detect.warm_up import WarmUp, warm_up

from ..settings import ServiceSettings
from .admission import Admission
from .batching import MicroBatcher
from .decode_budget import DecodeBudget
from .metrics import ServiceMetrics
from .model_slot import ModelSlot


log = logging.getLogger(__name__)


def service_parallelism(settings: ServiceSettings) -> Parallelism:
    """How many micro-batches run at once and on how many threads each: for latency (`detect.streams`)."""
    return choose_parallelism(settings.inference_streams, threads=settings.threads, favor="latency")


def detector_threads(settings: ServiceSettings, par: Parallelism) -> int | None:
    """The threads the model is loaded with: each stream's share, or (one stream, none set) the runtime's own
    default, all cores, as before streams."""
    return None if par.streams == 1 and settings.threads is None else par.threads


def camera_warm_up(settings: ServiceSettings, source: ConfigSource) -> Callable[[Detector], WarmUp] | None:
    """`ModelSlot`'s warm-up: the cameras of the config as last loaded (`warm_up`); None when switched off."""
    if not settings.warm_up_s:
        return None
    return lambda detector: warm_up(detector, source.config.cameras, settings.warm_up_s)


class DetectorRuntime:
    """`models` (which model serves), `batcher` (runs it in batches), `budget` (image memory in flight),
    `admission` (which inference requests are taken at all, and the pool their blocking parts run on)."""

    def __init__(self, settings: ServiceSettings, models: ModelSlot, metrics: ServiceMetrics, parallelism: Parallelism | None = None) -> None:
        self.models = models
        self.parallelism = parallelism or service_parallelism(settings)
        streams = self.parallelism.streams
        self.budget = DecodeBudget(settings.image_memory_mb * 2**20, settings.image_memory_wait_s, settings.retry_after_s, metrics)
        self.admission = Admission(
            settings.latency_budget_s, settings.inference_threads, metrics, retry_after_s=settings.retry_after_s, cold_limit=settings.batch_max_size,
            detector_streams=streams,
        )
        self.admission.watch()
        self.batcher = MicroBatcher(
            metrics, max_size=settings.batch_max_size, max_wait_s=settings.batch_max_wait_ms / 1000, queue_size=settings.batch_queue_size,
            retry_after_s=settings.retry_after_s, enabled=settings.batching, budget=self.budget, observer=self.admission.observe_detector, streams=streams,
        )

    @classmethod
    def open(cls, settings: ServiceSettings, metrics: ServiceMetrics, warm: Callable[[Detector], WarmUp] | None = None) -> DetectorRuntime:
        """A model that does not load is reported by /ready instead of failing the start, so the ledger and the
        review page keep working while a model is fixed or swapped in. `warm`: see `ModelSlot`."""
        par = service_parallelism(settings)
        log.info("detector: %d stream(s) x %s thread(s) (%s)", par.streams, par.threads, par.why)
        models = ModelSlot(
            settings.models_dir, DetectorSettings(conf=settings.conf, imgsz=settings.imgsz), detector_threads(settings, par), settings.persist_model, warm=warm,
        )
        models.start(settings.model)
        if settings.model is None and settings.model_watch_s > 0:
            models.follow_current(settings.model_watch_s)  # promote/rollback move CURRENT; the service follows
        return cls(settings, models, metrics, par)

    def model_info(self) -> tuple[str, str] | None:
        """(name, backend) of the model serving now, for the metrics; None while none is loaded."""
        model = self.models.current
        return (model.name, str(getattr(model.detector, "backend", "?"))) if model else None

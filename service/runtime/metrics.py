"""Prometheus metrics (prometheus_client), one registry per app so tests can build many apps in one process.

Request latency is labelled by route *template* (`/cases/{case_id}`), never the raw path, so a scan of ids
cannot blow up the series count; unmatched paths share one label (`service.http.request_timer` times them).
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import ProcessCollector
from prometheus_client.core import GaugeMetricFamily

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)


class ServiceMetrics:
    """Every series the service exports. Gauges whose value lives elsewhere (queue depth, backlog) read it
    when scraped, through the callables given to `watch`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)  # process_resident_memory_bytes, cpu seconds, open fds
        self.requests = Histogram("streetorder_request_seconds", "HTTP request latency by route template", ["method", "route", "status"], buckets=LATENCY_BUCKETS, registry=r)
        self.inference = Histogram("streetorder_inference_seconds", "Detector time per call (one micro-batch)", ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("streetorder_batch_size", "Images per detector call", ["model"], buckets=BATCH_BUCKETS, registry=r)
        self.queue_wait = Histogram("streetorder_queue_wait_seconds", "Time an image waited for the detector", buckets=LATENCY_BUCKETS, registry=r)
        self.shed = Counter("streetorder_shed_total", "Requests refused with 503 to shed load", ["reason"], registry=r)
        self.cases_created = Counter("streetorder_cases_created_total", "Cases opened in the ledger by this process", ["source"], registry=r)
        self.queue_depth = Gauge("streetorder_detector_queue_depth", "Images waiting for the detector", registry=r)
        self.decode_bytes = Gauge("streetorder_decode_budget_used_bytes", "Memory reserved by images being decoded and processed", registry=r)
        self.decode_budget = Gauge("streetorder_decode_budget_bytes", "The memory budget for images in flight", registry=r)
        self.inference_in_flight = Gauge("streetorder_inference_in_flight", "Inference requests admitted and not yet answered", registry=r)
        self.estimated_wait = Gauge("streetorder_inference_estimated_seconds", "How long an inference request admitted now would take (admission's estimate)", registry=r)
        self.backlog = Gauge("streetorder_report_backlog", "Incident reports accepted but not yet in the ledger", registry=r)

    def watch(self, *, queue_depth: Callable[[], float], decode_bytes: Callable[[], float], backlog: Callable[[], float], model: Callable[[], tuple[str, str] | None]) -> None:
        """`model`: (name, backend) of the model serving now, or None."""
        self.queue_depth.set_function(queue_depth)
        self.decode_bytes.set_function(decode_bytes)
        self.backlog.set_function(backlog)
        self.registry.register(_ModelInfo(model))

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _ModelInfo:
    """`streetorder_model_info{model, backend} 1` for the model serving at scrape time."""

    def __init__(self, current: Callable[[], tuple[str, str] | None]) -> None:
        self.current = current

    def collect(self):
        family = GaugeMetricFamily("streetorder_model_info", "The model serving now and the runtime chosen for it", labels=["model", "backend"])
        now = self.current()
        if now is not None:
            family.add_metric(list(now), 1)
        yield family

    def describe(self):
        return []

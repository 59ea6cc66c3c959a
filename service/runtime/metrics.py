"""Prometheus metrics (prometheus_client), one registry per app so tests can build many apps in one process.

Request latency is labelled by route *template* (`/cases/{case_id}`), never the raw path, so a scan of ids
cannot blow up the series count; unmatched paths share one label (`service.http.request_timer` times them).
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from pipeline.source.streams import StreamState

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
STAGE_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
# The steps an uploaded image takes around the model, in order (`stages`): with `inference` and `queue_wait`
# they say where a request's milliseconds go besides the model (`streetorder bench serve`'s c=1 breakdown).
STAGES = ("decode", "prepare", "boxes")


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
        self.stages = Histogram(
            "streetorder_image_stage_seconds", "Time an image spends in each step around the model: decode (upload to pixels), prepare (pixels to the model's "
            "input), boxes (the model's output to detections)", ["stage"], buckets=STAGE_BUCKETS, registry=r,
        )
        self.stage = {name: self.stages.labels(name) for name in STAGES}  # bound once: a request observes each without a lookup
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

    def watch_streams(self, statuses: Callable[[], list], outcomes: Callable[[], dict]) -> None:
        """The cameras' streams (`runtime.streams.StreamWorkers`), read at scrape time: one series per streamed camera."""
        self.registry.register(_StreamCollector(statuses, outcomes))

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


class _StreamCollector:
    """Per streamed camera: its state (one series per state, 1 for the current one, as a Prometheus state set),
    how long it has been down, when its last picture came, and its counters. Alert on
    `streetorder_stream_down_seconds > N` or `streetorder_stream_state{state="offline"} == 1`."""

    def __init__(self, statuses: Callable[[], list], outcomes: Callable[[], dict]) -> None:
        self.statuses, self.outcomes = statuses, outcomes

    def collect(self):
        from datetime import UTC, datetime

        now = datetime.now(UTC)
        state = GaugeMetricFamily("streetorder_stream_state", "A streamed camera's state: 1 for the current one (connecting, up, down, offline)", labels=["camera", "state"])
        down = GaugeMetricFamily("streetorder_stream_down_seconds", "Seconds since the camera's last picture while its stream is not up (0 while up)", labels=["camera"])
        last = GaugeMetricFamily("streetorder_stream_last_sample_timestamp_seconds", "Unix time of the camera's last picture", labels=["camera"])
        interval = GaugeMetricFamily("streetorder_stream_keyframe_interval_seconds", "The key-frame interval measured on the camera's RTSP stream", labels=["camera"])
        keyframes = GaugeMetricFamily("streetorder_stream_keyframes_only", "1 while only key frames are decoded (the cheap path), 0 while every frame is", labels=["camera"])
        samples = CounterMetricFamily("streetorder_stream_samples", "Pictures taken from the camera's stream", labels=["camera"])
        decoded = CounterMetricFamily("streetorder_stream_decoded_frames", "Frames decoded from the camera's stream (more than samples when every frame must be)", labels=["camera"])
        decode_s = CounterMetricFamily("streetorder_stream_decode_seconds", "Time spent decoding the camera's stream", labels=["camera"])
        reconnects = CounterMetricFamily("streetorder_stream_reconnects", "Attempts to reopen the camera's stream", labels=["camera"])
        failures = CounterMetricFamily("streetorder_stream_failures", "Failed attempts and drops of the camera's stream", labels=["camera"])
        intake = CounterMetricFamily("streetorder_stream_intake", "The camera's pictures by what the intake made of them (processed, journaled, superseded, shed, refused, failed)", labels=["camera", "outcome"])
        for st in self.statuses():
            cam = st.camera_id
            for name in StreamState:
                state.add_metric([cam, name.value], 1.0 if st.state == name else 0.0)
            down.add_metric([cam], 0.0 if st.down_since is None else max((now - st.down_since).total_seconds(), 0.0))
            if st.last_sample_at is not None:
                last.add_metric([cam], st.last_sample_at.timestamp())
            if st.keyframe_interval_s is not None:
                interval.add_metric([cam], st.keyframe_interval_s)
            if st.decode_mode is not None:
                keyframes.add_metric([cam], 1.0 if st.decode_mode == "keyframes" else 0.0)
            samples.add_metric([cam], st.samples)
            decoded.add_metric([cam], st.decoded)
            decode_s.add_metric([cam], st.decode_seconds)
            reconnects.add_metric([cam], st.reconnects)
            failures.add_metric([cam], st.failures)
        for cam, counts in sorted(self.outcomes().items()):
            for outcome, n in sorted(counts.items()):
                intake.add_metric([cam, outcome], n)
        yield from (state, down, last, interval, keyframes, samples, decoded, decode_s, reconnects, failures, intake)

    def describe(self):
        return []

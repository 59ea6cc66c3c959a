"""Who makes the boxes of a prepared image's raw output: the worker for a lone image with nothing behind it (the
request then needs no thread hop after the detector), each request for its own under load (the model never waits
for boxes); and a failing `finish` still reaches the request as its error. A detector with independent inputs gets
a spare thread for them only while the service is otherwise idle."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from pipeline.detect import make_detections
from service.runtime.batching import MicroBatcher, Pending
from service.runtime.metrics import ServiceMetrics


class Prepared:
    def __init__(self, value: int) -> None:
        self.value = value
        self.nbytes = 8


class Split:
    """A preparable detector: `prepare` keeps the first pixel, the model echoes it, `finish` turns it into one box
    whose score is pixel / 255, and records the thread it ran on."""

    names = ("garbage",)
    preparable = True

    def __init__(self, model_s: float = 0.0, fail_finish: bool = False) -> None:
        self.model_s, self.fail_finish = model_s, fail_finish
        self.finished_on: list[str] = []
        self.batches: list[int] = []

    def prepare(self, image):
        return Prepared(int(image[0, 0, 0]))

    def infer_prepared(self, prepared):
        self.batches.append(len(prepared))
        time.sleep(self.model_s)
        return [p.value for p in prepared]

    def finish(self, raw, prepared):
        self.finished_on.append(threading.current_thread().name)
        if self.fail_finish:
            raise RuntimeError("bad output")
        return make_detections(np.array([[0, 0, 4, 4]], float), [raw / 255], [0], self.names)


def image(v: int) -> np.ndarray:
    return np.full((8, 8, 3), v, np.uint8)


def test_a_lone_image_gets_its_boxes_from_the_worker():
    detector = Split()
    batcher = MicroBatcher(ServiceMetrics())
    try:
        pending = batcher.submit(detector, image(51))
        raw = pending.future.result(timeout=5)
        assert Pending.finished(raw)  # the route answers on the event loop, no hop
        found = pending.finish(raw)
    finally:
        batcher.close()
    assert round(float(found.confidence[0]) * 255) == 51
    assert detector.finished_on == ["detector-batcher-0"]  # made once, on the worker


def test_under_load_each_request_makes_its_own_boxes():
    detector = Split(model_s=0.02)
    batcher = MicroBatcher(ServiceMetrics(), max_size=8, max_wait_s=0.01)
    try:
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda v: batcher.detect(detector, image(v)), range(1, 49)))
    finally:
        batcher.close()
    assert [round(float(a.confidence[0]) * 255) for a in answers] == list(range(1, 49))
    assert max(detector.batches) > 1
    batched = sum(n for n in detector.batches if n > 1)
    on_callers = sum(1 for name in detector.finished_on if not name.startswith("detector-batcher"))
    assert on_callers >= batched  # every image of a batch was finished by its own request
    assert len(detector.finished_on) == 48  # and none twice


class Slow(Split):
    """`prepare` and `finish` take a known time, so the stage timings can be checked against it."""

    def prepare(self, image):
        time.sleep(0.005)
        return super().prepare(image)

    def finish(self, raw, prepared):
        time.sleep(0.005)
        return super().finish(raw, prepared)


def stage(metrics: ServiceMetrics, name: str, what: str = "count") -> float:
    return metrics.registry.get_sample_value(f"streetorder_image_stage_seconds_{what}", {"stage": name})


def test_each_image_is_timed_once_in_prepare_and_in_boxes_wherever_its_boxes_are_made():
    """The stage histogram behind `bench serve`'s breakdown: every image once per stage, whether the worker made its
    boxes (a lone image) or its own request did (under load), with the time the step took."""
    detector = Slow(model_s=0.02)
    metrics = ServiceMetrics()
    batcher = MicroBatcher(metrics, max_size=8, max_wait_s=0.01)
    try:
        batcher.detect(detector, image(1))  # alone: boxes on the worker
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda v: batcher.detect(detector, image(v)), range(2, 18)))  # batched: boxes on each request's thread
    finally:
        batcher.close()
    assert any(not name.startswith("detector-batcher") for name in detector.finished_on)  # both paths were taken
    assert stage(metrics, "prepare") == stage(metrics, "boxes") == 17
    assert stage(metrics, "decode") == 0  # decoding is the upload reader's (test_capacity.py)
    for name in ("prepare", "boxes"):
        assert 17 * 0.005 <= stage(metrics, name, "sum") < 17 * 0.05


def test_a_finish_that_fails_on_the_worker_fails_the_request():
    detector = Split(fail_finish=True)
    batcher = MicroBatcher(ServiceMetrics())
    try:
        pending = batcher.submit(detector, image(3))
        with pytest.raises(RuntimeError, match="bad output"):
            pending.result()
    finally:
        batcher.close()
    assert not pending._open  # its memory reservation is released


class TwoParts(Split):
    """A detector with independent inputs (`uses_spare`, as `CueCascade`): records whether each call got a spare."""

    uses_spare = True

    def __init__(self, model_s: float = 0.0) -> None:
        super().__init__(model_s)
        self.spares: list[tuple[str, bool]] = []

    def prepare(self, image, spare=None):
        self.spares.append(("prepare", spare is not None))
        if spare is not None:
            return spare.submit(super().prepare, image).result()
        return super().prepare(image)



def test_a_lone_image_gets_a_spare_thread_for_its_inputs():
    detector = TwoParts()
    batcher = MicroBatcher(ServiceMetrics())
    try:
        for v in (10, 20):
            found = batcher.detect(detector, image(v))
            assert round(float(found.confidence[0]) * 255) == v
    finally:
        batcher.close()
    assert detector.spares == [("prepare", True)] * 2
    assert batcher._spare is not None and batcher._spare._shutdown  # closed with the batcher


def test_under_load_no_request_takes_the_spare_thread():
    detector = TwoParts(model_s=0.3)
    batcher = MicroBatcher(ServiceMetrics(), max_size=8, max_wait_s=0.01)
    try:
        first = batcher.submit(detector, image(1))  # in the model for 300 ms
        time.sleep(0.01)
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda v: batcher.detect(detector, image(v)), range(2, 10)))
        first.result()
    finally:
        batcher.close()
    assert [round(float(a.confidence[0]) * 255) for a in answers] == list(range(2, 10))
    prepared_with = [used for _, used in detector.spares]
    assert prepared_with[0] is True and not any(prepared_with[1:])  # the model was busy for every later one


class ShortOutput(Split):
    """A broken model runtime: one output fewer than the images it was given, on its first call only."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def infer_prepared(self, prepared):
        self.calls += 1
        out = super().infer_prepared(prepared)
        return out[:-1] if self.calls == 1 else out


def test_a_detector_that_answers_short_fails_its_requests_instead_of_leaving_them_waiting():
    detector = ShortOutput()
    batcher = MicroBatcher(ServiceMetrics())
    try:
        pending = batcher.submit(detector, image(7))
        with pytest.raises(RuntimeError, match="0 outputs for 1 image"):
            pending.future.result(timeout=5)  # before the fix: never answered, the request waited for ever
        assert round(float(batcher.detect(detector, image(9)).confidence[0]) * 255) == 9  # the worker goes on
    finally:
        batcher.close()


def test_a_worker_that_trips_over_its_own_bookkeeping_answers_the_batch_and_goes_on(monkeypatch):
    """Anything that escapes a batch (here the queue-wait metric) reaches that batch's requests as their error; the
    worker thread lives on, so later requests are served (before: the thread died and every later request waited)."""
    detector = Split()
    batcher = MicroBatcher(ServiceMetrics())

    class BreaksOnce:
        def __init__(self, real):
            self.real, self.calls = real, 0

        def observe(self, value):
            self.calls += 1
            if self.calls == 1:
                raise ValueError("metrics backend broke")
            self.real.observe(value)

    monkeypatch.setattr(batcher.metrics, "queue_wait", BreaksOnce(batcher.metrics.queue_wait))
    try:
        with pytest.raises(ValueError, match="metrics backend broke"):
            batcher.submit(detector, image(5)).future.result(timeout=5)
        assert round(float(batcher.detect(detector, image(6)).confidence[0]) * 255) == 6
    finally:
        batcher.close()

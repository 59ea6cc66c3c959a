"""The micro-batcher with several detector streams: each request gets its own image's answer, batches run on
every stream, a batch is never taken twice or empty, and closing answers what still waits."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from pipeline.detect import make_detections
from service.runtime.batching import MicroBatcher
from service.runtime.metrics import ServiceMetrics


class Echo:
    """Answers each image with one box whose score is the image's first pixel / 255; slow enough that
    requests pile up behind a busy stream. Records the batches and the threads that ran them."""

    names = ("garbage",)

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.threads: set[str] = set()
        self.lock = threading.Lock()

    def detect(self, images):
        with self.lock:
            self.batches.append(len(images))
            self.threads.add(threading.current_thread().name)
        time.sleep(0.03)
        return [make_detections(np.array([[0, 0, 4, 4]], float), [float(im[0, 0, 0]) / 255], [0], self.names) for im in images]


def test_two_streams_answer_every_request_with_its_own_image():
    detector = Echo()
    batcher = MicroBatcher(ServiceMetrics(), max_size=4, max_wait_s=0.002, streams=2)
    try:
        images = [np.full((8, 8, 3), v, np.uint8) for v in range(1, 61)]
        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(lambda im: batcher.detect(detector, im), images))
    finally:
        batcher.close()
    assert [round(float(a.confidence[0]) * 255) for a in answers] == list(range(1, 61))
    assert sum(detector.batches) == 60 and all(0 < n <= 4 for n in detector.batches)  # none taken twice, none empty
    assert len(batcher._workers) == 2 and detector.threads <= {"detector-batcher-0", "detector-batcher-1"}
    assert len(detector.threads) == 2  # 12 callers on a 30 ms detector keep both streams busy


def test_closing_answers_what_waits_on_every_stream():
    from service.runtime.errors import Unavailable

    detector = Echo()
    batcher = MicroBatcher(ServiceMetrics(), max_size=1, max_wait_s=0.0, streams=3)
    pending = [batcher.submit(detector, np.full((8, 8, 3), 9, np.uint8)) for _ in range(12)]
    batcher.close()
    outcomes = []
    for p in pending:
        try:
            p.result()
            outcomes.append("answered")
        except Unavailable:
            outcomes.append("unavailable")
    assert len(outcomes) == 12 and "answered" in outcomes  # each one answered or refused, none left hanging


def test_streams_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        MicroBatcher(ServiceMetrics(), streams=0)

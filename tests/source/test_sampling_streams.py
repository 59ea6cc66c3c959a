"""Detector streams beside the decoding (`sampling.detect_steps(streams=N)`, the night job's way): the same
batches and the same detections in the same tick order as the sequential path; errors and early stops; the
streams setting validated wherever it is read."""

from __future__ import annotations

import random
import threading
import time
from datetime import datetime, timezone

import numpy as np
import pytest

from pipeline.config import parse_config
from pipeline.detect import empty_detections, make_detections
from pipeline.detect.streams import MAX_AUTO_STREAMS, choose_parallelism, parse_streams
from pipeline.night.units import NightSettings
from pipeline.source.sampling import ImageTicks, SampleStats, gated

START = datetime(2026, 11, 20, 22, 0, tzinfo=timezone.utc)
W, H = 96, 64
CONFIG = """
cameras:
  - id: cam
    location: {district: 西湖区, point: P1}
    resolution: [96, 64]
    zones:
      - {id: walk, kind: garbage_watch, polygon: [[0, 0], [96, 0], [96, 64], [0, 64]]}
rules:
  garbage: {min_dwell_s: 60}
"""


def render(t: float) -> np.ndarray:
    """A scene that is busy (a bright block moving every tick) for 40 s, then still for 60 s, then busy again:
    ticks the gate detects and ticks it reuses."""
    image = np.full((H, W, 3), 40, np.uint8)
    moving = t < 40 or t >= 100
    x = int(t * 7) % (W - 16) if moving else 30
    image[20:40, x : x + 16] = 220
    return image


class Slow:
    """Reads the bright block's place from the pixels; each call sleeps a random while, so that batches run on
    several streams finish out of order. Records each batch it was given (by the block's place)."""

    names = ("garbage",)

    def __init__(self, fail_on: int | None = None) -> None:
        self.batches: list[tuple[int, ...]] = []
        self.threads: set[str] = set()
        self.fail_on = fail_on
        self._lock = threading.Lock()
        self._rng = random.Random(7)

    def detect(self, images):
        with self._lock:
            call = len(self.batches)
            self.batches.append(tuple(int(np.argmax(im[30, :, 0] > 100)) for im in images))
            self.threads.add(threading.current_thread().name)
            pause = self._rng.uniform(0.0, 0.02)
        time.sleep(pause)
        if self.fail_on is not None and call == self.fail_on:
            raise RuntimeError("the detector failed")
        out = []
        for im in images:
            xs = np.flatnonzero(im[30, :, 0] > 100)
            out.append(make_detections(np.array([[xs[0], 20, xs[-1] + 1, 40]], float), [0.9], [0], self.names) if len(xs) else empty_detections())
        return out


def _run(streams: int, detector: Slow, ticks: int = 70, batch: int = 4):
    config = parse_config(CONFIG)
    camera = config.cameras[0]
    stats = SampleStats()
    out = gated(ImageTicks(render, 2.0, ticks), camera, detector, START, W, H, rules=config.rules, batch=batch, stats=stats, streams=streams)
    return out, stats


def _view(items) -> list[tuple]:
    return [(f.at, bool(f.meta.get("reused")), tuple(map(tuple, d.xyxy.astype(int).tolist()))) for f, d in items]


def test_streams_give_the_sequential_batches_and_detections_in_tick_order():
    base_det = Slow()
    base, base_stats = _run(0, base_det)
    base = _view(base)
    assert len(base) == 70 and 0 < base_stats.reused < 70  # the scene has both kinds of tick
    for streams in (1, 3):
        det = Slow()
        got, stats = _run(streams, det)
        assert _view(got) == base
        assert det.batches == base_det.batches  # the same frames in the same batches
        assert (stats.detected, stats.reused, stats.ticks) == (base_stats.detected, base_stats.reused, base_stats.ticks)
        assert all(name.startswith("streetorder-detect") for name in det.threads)  # not the decoding thread


def test_a_part_filled_batch_does_not_hold_the_ticks_behind_it():
    """On a static scene the detected frames are far apart: a batch is sent once `batch` ticks have passed, not
    when it fills up, so the engine gets the first tick after one detection, not four (the ticks between are
    the gate's reuses, waiting on that batch)."""

    def still(t: float) -> np.ndarray:  # the block moves once every 20 s: a detection, then reuses
        image = np.full((H, W, 3), 40, np.uint8)
        x = 10 * (int(t) // 20) % (W - 16)
        image[20:40, x : x + 16] = 220
        return image

    config = parse_config(CONFIG)
    for streams in (0, 2):
        det = Slow()
        items = gated(ImageTicks(still, 2.0, 60), config.cameras[0], det, START, W, H, rules=config.rules, batch=4, streams=streams)
        first = next(items)
        assert not first[0].meta.get("reused") and det.batches[0] == (0,)
        if streams == 0:  # the streams decode on while they detect; the sequential path has run the one batch
            assert det.batches == [(0,)]
        rest = list(items)
        assert len(rest) == 59 and all(len(b) == 1 for b in det.batches) and len(det.batches) >= 3


def test_a_detector_error_comes_after_the_ticks_before_it():
    full = _view(_run(0, Slow())[0])
    for streams in (0, 2):
        items, _ = _run(streams, Slow(fail_on=3))
        got = []
        with pytest.raises(RuntimeError, match="the detector failed"):
            for item in items:
                got.append(item)
        assert _view(got) == full[: len(got)] and len(got) >= 12  # three batches of 4 were answered


def test_a_consumer_that_stops_early_stops_the_streams():
    items, _ = _run(2, Slow())
    for k, _ in enumerate(items):
        if k == 5:
            break
    items.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("streetorder-detect")]


def test_the_streams_setting_is_validated():
    assert parse_streams("auto") == "auto" and parse_streams(" AUTO ") == "auto" and parse_streams("3") == 3 and parse_streams(2) == 2
    assert parse_streams("0", minimum=0) == 0 and NightSettings(streams=0).streams == 0  # the night job: in the decoding thread
    for bad in ("0", 0, -1, "two", "1.5", True, None, 2.0):
        with pytest.raises(ValueError, match="'auto' or a whole number"):
            parse_streams(bad)
    with pytest.raises(ValueError, match="'auto' or a whole number"):
        NightSettings(streams="many")
    with pytest.raises(ValueError, match="threads must be at least 1"):
        NightSettings(threads=0)
    assert NightSettings(streams="2").streams == 2 and NightSettings().streams == "auto"


def test_auto_picks_from_the_cores_and_says_why():
    p = choose_parallelism("auto", cores=2)
    assert (p.streams, p.threads) == (2, 1) and "auto" in p.why
    assert (choose_parallelism("auto", cores=1).streams, choose_parallelism("auto", cores=1).threads) == (1, 1)
    big = choose_parallelism("auto", cores=16)
    assert (big.streams, big.threads) == (MAX_AUTO_STREAMS, 16 // MAX_AUTO_STREAMS)
    assert (choose_parallelism("auto", cores=2, favor="latency").streams, choose_parallelism("auto", cores=2, favor="latency").threads) == (1, 2)
    assert choose_parallelism("auto", cores=16, favor="latency").streams == 4
    fixed = choose_parallelism(3, cores=2, threads=2)
    assert (fixed.streams, fixed.threads) == (3, 2) and "as set" in fixed.why
    off = choose_parallelism(0, cores=2)
    assert (off.streams, off.threads) == (0, 2) and "decoding thread" in off.why


def test_the_environment_variables_are_validated(monkeypatch):
    from pipeline.config.settings import PipelineSettings
    from service.settings import ServiceSettings

    monkeypatch.setenv("STREETORDER_NIGHT_STREAMS", "lots")
    with pytest.raises(ValueError, match=r"night_streams \(STREETORDER_NIGHT_STREAMS\)"):
        PipelineSettings.load()
    assert PipelineSettings.load(night_streams="2").night_streams == 2  # the flag wins
    monkeypatch.setenv("STREETORDER_NIGHT_STREAMS", "3")
    assert PipelineSettings.load().night_streams == 3
    monkeypatch.setenv("STREETORDER_INFERENCE_STREAMS", "0")
    with pytest.raises(ValueError, match=r"inference_streams \(STREETORDER_INFERENCE_STREAMS\)"):
        ServiceSettings.load()
    monkeypatch.delenv("STREETORDER_INFERENCE_STREAMS")
    assert ServiceSettings.load().inference_streams == "auto"

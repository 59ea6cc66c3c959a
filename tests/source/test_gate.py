"""Decode only what is needed, detect only what changed: every decode strategy gives the same frames; the gate
ignores sensor noise and brightness drift, still sees what appears, and never changes the incidents (sample city,
scenarios, a generated night clip)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import cv2
import numpy as np
import pytest

from pipeline.config import GateConfig, load_config, parse_config
from pipeline.source.decode import STRATEGIES, VideoError, VideoReader, probe
from pipeline.detect import empty_detections, make_detections
from pipeline.bench.nightclip import NightLook, Planted, night_gray, write_night_clip
from pipeline.engine import Engine
from pipeline.source.frames import video_frames, video_start
from pipeline.source.gate import ChangeGate
from pipeline.source.images import load_image
from pipeline.source.sampling import GATE_OFF, SampleStats, sample_video

from tests.conftest import GARBAGE_CN, REPO, STREETS_IN

TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 11, 20, 23, 0, tzinfo=TZ)
W, H, FPS = 640, 360, 5
APPEAR, VANISH = 61.3, 173.1
CONFIG = """
cameras:
  - id: night
    location: {district: 西湖区, point: P9}
    resolution: [640, 360]
    zones:
      - {id: walk, kind: garbage_watch, polygon: [[0, 150], [640, 150], [640, 360], [0, 360]]}
rules:
  garbage: {min_dwell_s: 60}
incidents: {end_after_s: 60}
"""


def _crop() -> np.ndarray:
    """A real garbage pile (garbage-cn val 000105), bright as a lit heap in an infrared picture."""
    pile = load_image(GARBAGE_CN / "val" / "images" / "000105_jpg.jpg")[382:637, 65:489]
    return cv2.convertScaleAbs(cv2.resize(cv2.cvtColor(pile, cv2.COLOR_BGR2GRAY), (120, 72)), alpha=0.4, beta=160)


@pytest.fixture(scope="module")
def night_clip(tmp_path_factory) -> Path:
    """4 minutes of a noisy, drifting night street at 640x360, 5 fps, a keyframe every 2 s; a heap appears at
    61.3 s and is gone at 173.1 s."""
    street = cv2.resize(load_image(STREETS_IN / "images" / "IMG-20240615-WA0055_jpg.jpg"), (W, H), interpolation=cv2.INTER_AREA)
    background = night_gray(street, gain=0.3, offset=10)
    path = tmp_path_factory.mktemp("night") / "night_20261120_230000.mp4"
    planted = [Planted("heap", _crop(), (300, 240), APPEAR, VANISH)]
    look = NightLook(noise_sigma=6.0, gain_drift=0.15, offset_drift=10.0, drift_period_s=200.0)
    return write_night_clip(path, background, planted, seconds=240, fps=FPS, gop=10, look=look, bitrate=1_000_000, preset="ultrafast")


class BrightHeap:
    """A detector that reads pixels: a bright blob is 'garbage'. The model has its own tests; this one makes
    every frame's answer depend on what the frame really shows, cheaply."""

    names = ("garbage",)

    def __init__(self) -> None:
        self.calls = 0

    def detect(self, images):
        out = []
        for im in images:
            self.calls += 1
            gray = cv2.GaussianBlur(cv2.cvtColor(im, cv2.COLOR_BGR2GRAY), (0, 0), 2)
            n, _, stats, _ = cv2.connectedComponentsWithStats((gray > 140).astype(np.uint8))
            boxes = [(x, y, x + w, y + h) for x, y, w, h, a in stats[1:n] if a >= 200]
            out.append(make_detections(np.array(boxes, float), [0.9] * len(boxes), [0] * len(boxes), self.names) if boxes else empty_detections())
        return out


@pytest.mark.slow
def test_every_decode_strategy_gives_the_same_frames(night_clip):
    info = probe(night_clip)
    assert info.keyframe_s == pytest.approx(2.0) and info.fps == FPS and info.frames == 1200
    for every in (2.0, 1.0, 6.0):
        runs = {s: list(video_frames(night_clip, START, every, "night", strategy=s)) for s in STRATEGIES if s == "decode" or _applies(s, every)}
        ref = runs["decode"]
        assert len(ref) == int(240 / every) and ref[1].at - ref[0].at == timedelta(seconds=every) and runs
        for name, frames in runs.items():
            assert [f.at for f in frames] == [f.at for f in ref], (name, every)
            assert all(np.array_equal(a.image, b.image) for a, b in zip(frames[::7], ref[::7])), (name, every)
    # ticks on keyframes: the decoder skips every other frame
    with VideoReader(night_clip, 2.0) as r:
        assert r.strategy in ("keyframes", "keyframe-seek")
        i = 0
        while (d := r.frame(i)) is not None:
            i = r.next_tick(i, d.t)
        assert r.decoded <= 130  # 120 keyframes (and what a seek reads before one), not 1200 frames


def _applies(strategy: str, every: float) -> bool:
    return strategy in {2.0: ("keyframes", "keyframe-seek"), 6.0: ("keyframes", "keyframe-seek"), 1.0: ("seek",)}[every]


def test_start_offset_keeps_the_tick_grid(night_clip):
    frames = list(video_frames(night_clip, START, 2.0, "night", start_s=101.0))
    assert (frames[0].at - START).total_seconds() == 102.0 and len(frames) == 69


def test_gate_ignores_noise_and_drift_and_sees_a_heap():
    config = parse_config(CONFIG)
    gate = ChangeGate(GateConfig(), config.cameras[0], W, H)
    rng = np.random.default_rng(1)
    street = cv2.resize(load_image(STREETS_IN / "images" / "IMG-20240615-WA0055_jpg.jpg"), (W, H))
    night = night_gray(street, gain=0.3, offset=10).astype(np.float32)

    def shot(gain: float, offset: float, heap: bool = False) -> np.ndarray:
        img = night.copy()
        if heap:
            img[240:312, 300:420] = _crop()
        return np.clip(img * gain + offset + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)

    gate.remember(gate.thumb(shot(1.0, 0.0)), 0.0)
    for gain, offset in ((1.0, 0.0), (1.2, 6.0), (0.8, -8.0), (1.25, 12.0)):  # noise, then drift
        assert not gate.changed(gate.thumb(shot(gain, offset))), (gain, offset)
    assert gate.changed(gate.thumb(shot(1.15, 5.0, heap=True)))
    assert gate.due(60.0) and not gate.due(59.0)


@pytest.mark.slow
def test_noisy_drifting_clip_gate_skips_most_detections_and_changes_nothing(night_clip):
    config = parse_config(CONFIG)
    camera = config.cameras[0]
    runs = {}
    for name, gate in (("gated", None), ("every frame", GATE_OFF)):
        det, stats = BrightHeap(), SampleStats()
        ticks = list(sample_video(night_clip, START, camera, det, 2.0, gate, rules=config.rules, stats=stats))
        seen = [(f.at - START).total_seconds() for f, d in ticks if len(d)]
        runs[name] = (ticks, stats, seen, _incidents(Engine(config), ticks))
    (gated, gs, g_seen, g_inc), (plain, ps, p_seen, p_inc) = runs["gated"], runs["every frame"]
    assert [f.at for f, _ in gated] == [f.at for f, _ in plain] and len(gated) == 120
    assert ps.detected == 120 and gs.detected <= 15 and gs.decoded <= 60  # most ticks neither decoded nor detected
    assert g_seen == p_seen and g_seen[0] == 62.0 and g_seen[-1] == 172.0  # first and last sight exact to the tick
    assert g_inc == p_inc and len(g_inc) == 1
    [(kind, zone, first, last, ended)] = g_inc
    assert kind == "garbage" and zone == "walk" and ended and first <= 62.0 + 60 and last == 172.0


def _incidents(engine: Engine, ticks) -> list[tuple]:
    final = {}
    for frame, dets in ticks:
        for r in engine.process(frame, dets).reports:
            final[r.incident_id] = r
    for r in engine.flush():
        final[r.incident_id] = r
    return sorted((r.type, r.zone_id, (r.first_seen - START).total_seconds(), (r.last_seen - START).total_seconds(), r.ended) for r in final.values())


@pytest.mark.slow
def test_sample_city_same_incidents_with_and_without_gate():
    """Detections are cached by image (the detector is deterministic and every strategy decodes the same pixels),
    so the gated run costs no detector time of its own."""
    from pipeline.detect import DetectorSettings
    from pipeline.detect.cascade import load_cue_cascade
    from pipeline.detect.plan import camera_detector
    from pipeline.bench.scenarios import DistinctDetector

    config = load_config(REPO / "datasets" / "sample-city.yaml")
    base = load_cue_cascade(None, settings=DetectorSettings(conf=0.25))
    detectors = {c.id: DistinctDetector(camera_detector(base, c, 640, 640)) for c in config.cameras}  # no slicing: any size
    footage = REPO / "datasets" / "samples" / "footage"
    outcome, detected = {}, {}
    for name, gate in (("every frame", GATE_OFF), ("gated", None)):
        engine, stats, final = Engine(config), SampleStats(), {}
        for cam in ("cam-lane", "cam-walkway"):
            camera = config.camera(cam)
            for video in sorted((footage / cam).glob("*.mp4")):
                for frame, dets in sample_video(video, video_start(video, ZoneInfo(camera.timezone)), camera, detectors[cam], 2.0, gate, rules=config.rules, stats=stats):
                    for r in engine.process(frame, dets).reports:
                        final[r.incident_id] = r
        for r in engine.flush():
            final[r.incident_id] = r
        outcome[name] = sorted((r.camera_id, r.type, r.zone_id, r.first_seen, r.last_seen, r.ended) for r in final.values())
        detected[name] = (stats.ticks, stats.detected)
    assert outcome["gated"] == outcome["every frame"] and len(outcome["gated"]) >= 1
    assert detected["every frame"] == (466, 466) and detected["gated"][0] == 466 and detected["gated"][1] < 466


@pytest.mark.slow
def test_scenarios_same_incidents_with_and_without_gate():
    from pipeline.detect import DetectorSettings
    from pipeline.detect.cascade import load_cue_cascade
    from pipeline.bench.scenarios import load_scenarios, run_scenario

    detector = load_cue_cascade(None, settings=DetectorSettings(conf=0.25))
    scenarios = [s for s in load_scenarios() if s.name in ("garbage-pile", "bikes-pile-up", "stall-forbidden-hours")]
    assert len(scenarios) == 3
    for scenario in scenarios:
        seen: dict = {}  # the gated run reads the plain run's detections of the frames it detects
        [plain] = run_scenario(scenario, detector, seen=seen)
        [gated] = run_scenario(scenario, detector, gate=True, seen=seen)
        assert gated.incidents == plain.incidents and gated.matched == gated.expected, scenario.name


def test_gate_config_is_validated():
    with pytest.raises(ValueError, match="must not exceed refresh_s"):
        GateConfig(refresh_s=20, max_stride_s=30)
    with pytest.raises(ValueError):
        GateConfig(min_changed_fraction=0)
    assert parse_config(CONFIG).cameras[0].gate.refresh_s == 60.0


def test_a_truncated_video_hands_on_what_decoded_then_says_so(tmp_path):
    from tests.conftest import VIDEO

    config = parse_config(CONFIG.replace("[640, 360]", "[768, 576]"))
    cut = tmp_path / "cut.avi"
    cut.write_bytes(VIDEO.read_bytes()[: VIDEO.stat().st_size // 2])
    got = []
    with pytest.raises(VideoError, match=r"truncated, decoded \d+ of 795 frames"):
        for frame, _ in sample_video(cut, START, config.cameras[0], BrightHeap(), 2.0, rules=config.rules, prefetch=4):
            got.append(frame)
    assert 15 <= len(got) <= 25
    ticks = sample_video(cut, START, config.cameras[0], BrightHeap(), 2.0, prefetch=4)
    next(ticks)
    ticks.close()  # a caller that stops early stops the decoding thread too

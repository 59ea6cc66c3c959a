"""Test data for the violation engine and the modules under it: one small camera config, hand-built detections,
and a feeder that runs the engine over a scene.

Detections are given directly (the detector has its own tests and the scenarios run the real one), so each
behaviour is checked exactly, including dropouts and track loss. The ledger's own test data is in
tests/cases/factory.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import supervision as sv

from pipeline.config import RulesConfig, parse_config
from pipeline.detect import empty_detections, make_detections
from pipeline.engine import Engine
from pipeline.source.frames import Frame
from pipeline.rules import FrameContext
from pipeline.scene.zones import CameraZones

NAMES = ("garbage", "garbage_bin", "overflow", "person", "bicycle", "car", "motorcycle", "truck", "bench", "umbrella", "chair", "dining table", "stall")
TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 20, 22, 0, tzinfo=TZ)
IMG = np.full((480, 640, 3), 90, np.uint8)

CONFIG = """
cameras:
  - id: cam
    location: {district: 西湖区, point: P1, gps: {lat: 30.26108, lon: 120.14609}}
    owner: 张伟
    resolution: [640, 480]
    zones:
      - {id: walk, kind: garbage_watch, polygon: [[0, 200], [640, 200], [640, 480], [0, 480]]}
      - {id: bay, kind: parking_bay, polygon: [[0, 0], [200, 0], [200, 190], [0, 190]]}
      - {id: market, kind: no_vending, polygon: [[400, 0], [640, 0], [640, 190], [400, 190]], schedule: {allowed: ["18:00-23:00"]}}
      - {id: mask, kind: ignore, polygon: [[560, 200], [640, 200], [640, 480], [560, 480]]}
    fixtures:
      - {id: bin, box: [20, 300, 80, 380], classes: [garbage], reason: a bin that belongs here}
rules:
  garbage: {min_dwell_s: 120}
  non_motor_parking: {min_dwell_s: 60, min_count: 3, severity_counts: [4, 5]}
  street_vending: {min_dwell_s: 120}
incidents: {end_after_s: 60}
"""


# ---- through the engine ---------------------------------------------------------------------------------


def engine(tmp_path: Path | None = None, extra: str = "") -> Engine:
    return Engine(parse_config(CONFIG + extra), evidence_dir=tmp_path)


def dets(*objs) -> object:
    """objs: (class name, box, score)."""
    if not objs:
        return empty_detections()
    return make_detections(np.array([o[1] for o in objs], float), [o[2] for o in objs], [NAMES.index(o[0]) for o in objs], NAMES)


def run(e: Engine, scene, seconds: int, step: int = 2, dropout: float = 0.0, seed: int = 0, start: datetime = T0, camera: str = "cam"):
    """Feed `scene(t) -> objects` every `step` s; returns the final state of every incident by id."""
    rng = np.random.default_rng(seed)
    final = {}
    for t in range(0, seconds + 1, step):
        objs = scene(t)
        d = empty_detections() if dropout and rng.random() < dropout else dets(*objs)
        for r in e.process(Frame(IMG, start + timedelta(seconds=t), camera), d).reports:
            final[r.incident_id] = r
    for r in e.flush():
        final[r.incident_id] = r
    return final


def jitter(box, t, amount=2.0):
    rng = np.random.default_rng(t)
    return tuple(np.array(box, float) + rng.normal(0, amount, 4))


# ---- straight into a module: what the tracker would hand on ---------------------------------------------


def camera(zones: str = ""):
    """The test camera of CONFIG, validated; `zones`: YAML lines of more zones, indented as CONFIG's."""
    return parse_config(CONFIG.replace("    fixtures:\n", zones + "    fixtures:\n", 1)).cameras[0]


def tracked(*objs, at: datetime = T0) -> sv.Detections:
    """Tracked detections as the rules see them. objs: (class name, box, score, seconds still) ; ids 1, 2, ..."""
    if not objs:
        d = empty_detections()
        d.tracker_id = np.zeros(0, dtype=int)
        d.data["still_since"] = np.array([], dtype=object)
        return d
    d = dets(*(o[:3] for o in objs))
    d.tracker_id = np.arange(1, len(objs) + 1)
    d.data["still_since"] = np.array([at - timedelta(seconds=o[3]) for o in objs], dtype=object)
    return d


def context(*objs, at: datetime = T0, rules: RulesConfig | None = None, cam=None, patrol: bool = False, size=(640, 480)) -> FrameContext:
    """One frame of the test camera (or a patrol photo: no zones) with `tracked(*objs)` in it, under CONFIG's rules."""
    rules = rules or parse_config(CONFIG).rules
    zones = None if patrol else CameraZones(cam or camera(), *size)
    return FrameContext(at=at, width=size[0], height=size[1], detections=tracked(*objs, at=at), rules=rules, zones=zones)

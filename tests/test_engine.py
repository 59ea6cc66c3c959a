"""The violation engine on controlled detections: rules, dwell, schedules, fixtures, incidents and evidence.

Detections are given directly (the detector has its own tests and the scenarios run the real one), so each
behaviour is checked exactly, including dropouts and track loss.
"""

from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from pipeline.config import parse_config
from pipeline.detect import make_detections
from pipeline.domain import GeoPoint
from pipeline.engine import ConfigSource, Engine, empty_detections
from pipeline.frames import Frame

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


def pile_scene(t):
    objs = []
    if 60 <= t < 600:
        objs.append(("garbage", jitter((250, 300, 350, 380), t), 0.7))
    x = (t * 20) % 640  # a passer-by with a bag
    objs += [("person", (x, 150, x + 40, 300), 0.9), ("garbage", (x + 20, 250, x + 45, 290), 0.6)]
    return objs


@pytest.mark.parametrize("dropout, seed", [(0.0, 0), (0.3, 1), (0.3, 2), (0.3, 3)])
def test_garbage_pile_is_one_incident_despite_dropouts(dropout, seed):
    incidents = run(engine(), pile_scene, 800, dropout=dropout, seed=seed)
    assert len(incidents) == 1, list(incidents)
    [r] = incidents.values()
    assert r.type == "garbage" and r.zone_id == "walk" and r.ended
    assert 0 <= (r.first_seen - T0).total_seconds() - 60 <= 10
    assert 580 <= (r.last_seen - T0).total_seconds() < 600
    assert r.location.point == "P1" and r.owner == "张伟" and r.camera_id == "cam"


def test_track_lost_for_longer_than_the_buffer_keeps_dwell_and_incident():
    # 40 s without detections: ByteTrack drops the track (30 s buffer); the new track re-links by position.
    scene = lambda t: [("garbage", jitter((250, 300, 350, 380), t), 0.7)] if not 100 <= t < 140 else []
    incidents = run(engine(), scene, 300)
    assert len(incidents) == 1
    [r] = incidents.values()
    assert r.first_seen == T0 and not r.ended


def test_short_stay_is_no_violation_and_a_moving_bag_neither():
    scene = lambda t: [("garbage", (250, 300, 350, 380), 0.7)] if 60 <= t < 150 else []
    assert run(engine(), scene, 400) == {}
    walker = lambda t: [("person", (t * 3, 150, t * 3 + 40, 300), 0.9), ("garbage", (t * 3 + 10, 250, t * 3 + 35, 290), 0.6)]
    assert run(engine(), walker, 200, step=2) == {}


def test_fixture_and_ignore_mask_suppress():
    fixture = lambda t: [("garbage", (22, 302, 79, 378), 0.8)]
    assert run(engine(), fixture, 300) == {}
    masked = lambda t: [("garbage", (570, 300, 630, 380), 0.8)]
    assert run(engine(), masked, 300) == {}
    # the same box in an unmasked place is a violation: the suppression above is not an accident
    assert len(run(engine(), lambda t: [("garbage", (400, 300, 460, 380), 0.8)], 300)) == 1


def test_bikes_pile_up_outside_the_bay():
    def scene(t):
        inside = [("bicycle", (20 + 40 * i, 100, 55 + 40 * i, 180), 0.8) for i in range(4)]  # parked properly
        outside = [("motorcycle", (220 + 60 * i, 300, 270 + 60 * i, 400), 0.8) for i in range(5) if t >= 30 * (i + 1)]
        return inside + outside

    incidents = run(engine(), scene, 400)
    assert len(incidents) == 1
    [r] = incidents.values()
    assert r.type == "non_motor_parking" and r.zone_id == "outside_bays"
    assert r.count == 5 and r.severity == 3
    assert (r.first_seen - T0).total_seconds() == 30


def test_bikes_in_the_bay_only_are_fine():
    scene = lambda t: [("bicycle", (20 + 40 * i, 100, 55 + 40 * i, 180), 0.8) for i in range(5)]
    assert run(engine(), scene, 300) == {}


def stall_scene(t):
    return [("umbrella", (430, 40, 520, 100), 0.7), ("chair", (440, 110, 480, 170), 0.6), ("person", (490, 60, 530, 180), 0.85)]


def test_stall_in_forbidden_hours_only():
    forbidden = run(engine(), stall_scene, 600, start=datetime(2026, 11, 21, 10, 0, tzinfo=TZ))
    assert len(forbidden) == 1 and next(iter(forbidden.values())).type == "street_vending"
    assert run(engine(), stall_scene, 600, start=datetime(2026, 11, 21, 19, 0, tzinfo=TZ)) == {}
    # the schedule is read in the camera's local time, whatever zone the timestamp carries
    utc_10am_local = datetime(2026, 11, 21, 2, 0, tzinfo=ZoneInfo("UTC"))
    assert len(run(engine(), stall_scene, 600, start=utc_10am_local)) == 1


def test_stall_needs_a_person_unless_the_class_is_a_stall_by_itself():
    no_vendor = lambda t: stall_scene(t)[:2]
    assert run(engine(), no_vendor, 600, start=datetime(2026, 11, 21, 10, 0, tzinfo=TZ)) == {}
    # a retrained model's 'stall' class feeds the rule with no code change
    stall_class = lambda t: [("stall", (430, 40, 560, 170), 0.7)]
    assert len(run(engine(), stall_class, 600, start=datetime(2026, 11, 21, 10, 0, tzinfo=TZ))) == 1
    # and the class-to-rule mapping is config: without 'chair' and 'umbrella' as stall evidence, no violation
    narrowed = Engine(parse_config(CONFIG.replace("street_vending: {min_dwell_s: 120}", "street_vending: {min_dwell_s: 120, attended_classes: [bench]}")))
    assert run(narrowed, stall_scene, 600, start=datetime(2026, 11, 21, 10, 0, tzinfo=TZ)) == {}


def test_same_footage_gives_same_incident_ids_at_any_speed():
    a = run(engine(), pile_scene, 800, dropout=0.3, seed=5)
    time.sleep(0.01)
    b = run(engine(), pile_scene, 800, dropout=0.3, seed=5)
    assert list(a) == list(b) and a[next(iter(a))].first_seen == b[next(iter(b))].first_seen


def checkerboard() -> np.ndarray:
    """Sharp detail that JPEG keeps and a blur destroys."""
    y, x = np.mgrid[0:480, 0:640]
    return np.repeat((((x // 16 + y // 16) % 2) * 160 + 40).astype(np.uint8)[..., None], 3, axis=2)


def test_evidence_files_blur_and_hashes(tmp_path):
    frame_img = checkerboard()
    e = engine(tmp_path)
    reports = []
    for t in range(0, 200, 2):
        d = dets(("garbage", (250, 300, 350, 380), 0.7), ("person", (100, 200, 160, 400), 0.9))
        reports += e.process(Frame(frame_img, T0 + timedelta(seconds=t), "cam"), d).reports
    opened = reports[0]
    kinds = {f.kind: f for f in opened.evidence}
    assert set(kinds) == {"best_frame", "crop", "context", "metadata"}
    for f in opened.evidence:
        assert hashlib.sha256(Path(f.path).read_bytes()).hexdigest() == f.sha256
        assert Path(f.path).is_relative_to(tmp_path)
    import cv2

    best = cv2.imread(kinds["best_frame"].path).astype(int)
    head = (slice(200, 260), slice(100, 160))  # top 30% of the person box
    body = (slice(300, 400), slice(400, 600))
    assert np.abs(best[head] - frame_img[head]).mean() > 25  # blurred
    assert np.abs(best[body] - frame_img[body]).mean() < 12  # only JPEG noise elsewhere
    crop = cv2.imread(kinds["crop"].path)
    assert 100 <= crop.shape[1] <= 200 and 80 <= crop.shape[0] <= 160
    meta = json.loads(Path(kinds["metadata"].path).read_text())
    assert meta["camera_id"] == "cam" and meta["location"]["district"] == "西湖区"
    assert meta["files"]["crop"]["sha256"] == kinds["crop"].sha256


def test_people_the_rules_ignore_are_still_blurred(tmp_path):
    """A person in an ignore mask, or too faint to start a track, never reaches the rules but is in the picture."""
    frame_img = checkerboard()
    e = engine(tmp_path)
    reports = []
    for t in range(0, 200, 2):
        d = dets(("garbage", (250, 300, 350, 380), 0.7), ("person", (570, 220, 630, 420), 0.9), ("person", (100, 200, 160, 400), 0.15))
        reports += e.process(Frame(frame_img, T0 + timedelta(seconds=t), "cam"), d).reports
    import cv2

    best = cv2.imread(next(f.path for f in reports[0].evidence if f.kind == "best_frame")).astype(int)
    for head in ((slice(220, 280), slice(570, 630)), (slice(200, 260), slice(100, 160))):
        assert np.abs(best[head] - frame_img[head]).mean() > 25


def test_blur_can_be_switched_off(tmp_path):
    frame_img = checkerboard()
    e = engine(tmp_path, "evidence: {blur_faces: false, blur_plates: false}\n")
    reports = []
    for t in range(0, 200, 2):
        d = dets(("garbage", (250, 300, 350, 380), 0.7), ("person", (100, 200, 160, 400), 0.9))
        reports += e.process(Frame(frame_img, T0 + timedelta(seconds=t), "cam"), d).reports
    import cv2

    best = cv2.imread(next(f.path for f in reports[0].evidence if f.kind == "best_frame")).astype(int)
    assert np.abs(best[200:260, 100:160] - frame_img[200:260, 100:160]).mean() < 12


def test_best_frame_prefers_uncut_boxes(tmp_path):
    e = engine(tmp_path)
    final = {}
    for t in range(0, 300, 2):
        box = (0, 300, 120, 400) if t < 150 else (10, 300, 130, 400)  # cut by the left edge at first
        for r in e.process(Frame(IMG, T0 + timedelta(seconds=t), "cam"), dets(("garbage", box, 0.9 if t < 150 else 0.6))).reports:
            final[r.incident_id] = r
    for r in e.flush():
        final[r.incident_id] = r
    [r] = final.values()
    meta = json.loads(Path(next(f.path for f in r.evidence if f.kind == "metadata")).read_text())
    assert meta["box"][0] >= 4 and datetime.fromisoformat(meta["taken_at"]) >= T0 + timedelta(seconds=150)


def test_patrol_photos_dedup_by_place_and_time():
    e = engine()
    g = lambda: dets(("garbage", (200, 200, 400, 400), 0.8))
    first = e.process_photo(Frame(IMG, T0, gps=GeoPoint(lat=30.26105, lon=120.14610)), detections=g())
    near = e.process_photo(Frame(IMG, T0 + timedelta(minutes=35), gps=GeoPoint(lat=30.26112, lon=120.14608)), detections=g())
    far = e.process_photo(Frame(IMG, T0 + timedelta(minutes=40), gps=GeoPoint(lat=30.25, lon=120.17)), detections=g())
    later = e.process_photo(Frame(IMG, T0 + timedelta(hours=8), gps=GeoPoint(lat=30.26105, lon=120.14610)), detections=g())
    assert len(first.opened) == 1 and near.opened == [] and near.updated[0].incident_id == first.opened[0].incident_id
    assert len(far.opened) == 1 and len(later.opened) == 1
    # a photo near a camera point takes that point's district and name; one far from any gets a GPS point
    assert first.opened[0].location.point == "P1" and first.opened[0].source == "patrol"
    assert far.opened[0].location.point.startswith("GPS 30.25000,120.17000")
    with pytest.raises(ValueError, match="needs GPS"):
        e.process_photo(Frame(IMG, T0), detections=g())


def test_config_reload_without_restart(tmp_path):
    path = tmp_path / "cams.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    e = Engine(ConfigSource(path))
    pile = dets(("garbage", (400, 300, 460, 380), 0.8))
    for t in range(0, 20, 2):
        e.process(Frame(IMG, T0 + timedelta(seconds=t), "cam"), pile)
    time.sleep(0.01)
    path.write_text(CONFIG.replace("[560, 200], [640, 200], [640, 480], [560, 480]", "[380, 200], [640, 200], [640, 480], [380, 480]"), encoding="utf-8")
    final = {}
    for t in range(20, 300, 2):
        for r in e.process(Frame(IMG, T0 + timedelta(seconds=t), "cam"), pile).reports:
            final[r.incident_id] = r
    assert final == {} and e.source.version == 2  # the wider ignore mask took effect mid-run
    path.write_text("cameras: [oops", encoding="utf-8")
    e.process(Frame(IMG, T0 + timedelta(seconds=302), "cam"), pile)
    assert e.source.error and "not valid YAML" in e.source.error and e.source.version == 2


def test_flush_still_reports_a_camera_a_reload_removed(tmp_path):
    path = tmp_path / "cams.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    e = Engine(ConfigSource(path))
    pile = dets(("garbage", (400, 300, 460, 380), 0.8))
    opened = []
    for t in range(0, 200, 2):
        opened += e.process(Frame(IMG, T0 + timedelta(seconds=t), "cam"), pile).opened
    time.sleep(0.01)
    path.write_text(CONFIG.replace("id: cam\n", "id: cam-renamed\n"), encoding="utf-8")
    assert e.config.cameras[0].id == "cam-renamed"
    [report] = e.flush()
    assert report.incident_id == opened[0].incident_id and report.location.point == "P1"


def test_unknown_camera_and_missing_detector():
    e = engine()
    with pytest.raises(KeyError, match="unknown camera 'nope'"):
        e.process(Frame(IMG, T0, "nope"), dets())
    with pytest.raises(ValueError, match="no detector"):
        e.process(Frame(IMG, T0, "cam"))

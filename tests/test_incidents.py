"""Incidents: violations over time folded into one incident per real thing, matched by place (not track id),
ended after `end_after_s` without it; patrol photos matched by type, distance and time."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import IncidentConfig, PatrolConfig
from pipeline.domain import GeoPoint
from pipeline.source.frames import Frame
from pipeline.incidents import CameraIncidents, Incident, PatrolIncidents, Snapshot, snapshot_quality
from pipeline.rules import OUTSIDE_BAYS, Violation

from .factory import IMG, T0, dets, engine, tracked


def violation(box=(250, 300, 350, 380), type_="garbage", zone="walk", since=T0, score=0.7, severity=1, count=1) -> Violation:
    return Violation(type=type_, zone_id=zone, box=box, count=count, score=score, severity=severity, since=since, members=(0,))


def snapshot(v: Violation, quality: float = 1.0) -> Snapshot:
    d = tracked(("garbage", v.box, v.score, 0))
    return Snapshot(IMG, v.since, v.box, d, v.members, quality, d)


def frames(book, seconds, *, start: datetime = T0, step: int = 2, scene=lambda t: [violation()]):
    """Fold `scene(t) -> violations` in every `step` s; returns (t, opened ids, ended ids) for each frame that opened or ended one."""
    log = []
    for t in range(0, seconds + 1, step):
        ch = book.update(start + timedelta(seconds=t), scene(t), snapshot)
        if ch.opened or ch.ended:
            log.append((t, [i.id for i in ch.opened], [i.id for i in ch.ended]))
    return log


# ---- through the engine ---------------------------------------------------------------------------------


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


# ---- camera incidents -----------------------------------------------------------------------------------


def test_a_violation_seen_again_at_the_same_place_is_the_same_incident():
    book = CameraIncidents("cam", IncidentConfig())
    first = book.update(T0, [violation()], snapshot)
    assert [i.id for i in first.opened] == ["cam-garbage-walk-20261120T220000"] and first.updated == []
    again = book.update(T0 + timedelta(seconds=2), [violation(box=(255, 302, 352, 381))], snapshot)
    assert again.opened == [] and again.updated == first.opened
    [inc] = book.open
    assert inc.hits == 2 and inc.last_seen == T0 + timedelta(seconds=2) and inc.box == (255, 302, 352, 381)


def test_another_place_type_or_zone_is_another_incident():
    book = CameraIncidents("cam", IncidentConfig())
    book.update(T0, [violation()], snapshot)
    ch = book.update(
        T0 + timedelta(seconds=2),
        [violation(), violation(box=(450, 300, 520, 380)), violation(zone="door"), violation(type_="street_vending", zone="walk")],
        snapshot,
    )
    assert len(ch.updated) == 1 and len(ch.opened) == 3 and len(book.open) == 4


def test_a_pile_that_grew_or_shrank_is_still_the_same_incident():
    """IoU below match_iou (0.2), but one box is mostly inside the other."""
    book = CameraIncidents("cam", IncidentConfig())
    book.update(T0, [violation(box=(250, 300, 300, 340))], snapshot)
    grown = book.update(T0 + timedelta(seconds=2), [violation(box=(200, 260, 400, 400))], snapshot)  # IoU 0.07, old one wholly inside
    assert grown.opened == [] and len(grown.updated) == 1
    beside = book.update(T0 + timedelta(seconds=4), [violation(box=(380, 260, 580, 400))], snapshot)  # IoU 0.05, 10% inside
    assert len(beside.opened) == 1


def test_parked_vehicles_are_one_incident_per_zone_wherever_they_stand():
    book = CameraIncidents("cam", IncidentConfig())
    book.update(T0, [violation((220, 300, 390, 400), "non_motor_parking", OUTSIDE_BAYS, count=3)], snapshot)
    ch = book.update(T0 + timedelta(seconds=2), [violation((500, 100, 600, 180), "non_motor_parking", OUTSIDE_BAYS, count=4, severity=2)], snapshot)
    assert ch.opened == [] and len(ch.updated) == 1
    [inc] = book.open
    assert (inc.count, inc.severity, inc.first_seen) == (4, 2, T0)


def test_absorbing_keeps_the_worst_and_the_earliest():
    book = CameraIncidents("cam", IncidentConfig())
    book.update(T0, [violation(since=T0 - timedelta(seconds=100), score=0.9, severity=2, count=3)], snapshot)
    book.update(T0 + timedelta(seconds=2), [violation(since=T0 - timedelta(seconds=300), score=0.5, severity=1, count=1)], snapshot)
    [inc] = book.open
    assert (inc.score, inc.severity, inc.count) == (0.9, 2, 3)
    assert inc.first_seen == T0 - timedelta(seconds=300) and inc.last_seen == T0 + timedelta(seconds=2)


def test_an_incident_ends_only_after_end_after_s_without_its_violation():
    book = CameraIncidents("cam", IncidentConfig(end_after_s=60))
    [inc] = book.update(T0, [violation()], snapshot).opened
    assert book.update(T0 + timedelta(seconds=60), [], snapshot).ended == [] and book.open == [inc]
    ch = book.update(T0 + timedelta(seconds=61), [], snapshot)
    assert ch.ended == [inc] and inc.ended and book.open == []


def test_a_violation_back_after_the_end_is_a_new_incident_with_a_new_id():
    book = CameraIncidents("cam", IncidentConfig(end_after_s=60))
    scene = lambda t: [violation()] if t < 10 or t >= 100 else []  # the same evidence, settled at T0
    assert frames(book, 120, scene=scene) == [
        (0, ["cam-garbage-walk-20261120T220000"], []),
        (70, [], ["cam-garbage-walk-20261120T220000"]),  # last seen at 8
        (100, ["cam-garbage-walk-20261120T220000-2"], []),
    ]


def test_dropouts_shorter_than_end_after_s_keep_one_incident():
    rng = np.random.default_rng(0)
    gaps = rng.random(400) < 0.3
    book = CameraIncidents("cam", IncidentConfig(end_after_s=60))
    assert frames(book, 798, scene=lambda t: [] if gaps[t // 2] else [violation()]) == [(0, ["cam-garbage-walk-20261120T220000"], [])]


def test_ids_are_safe_for_paths():
    book = CameraIncidents("cam 1/東", IncidentConfig())
    [inc] = book.update(T0, [violation(zone="side walk")], snapshot).opened
    assert inc.id == "cam_1_-garbage-side_walk-20261120T220000" and inc.camera_id == "cam 1/東"


def test_the_best_snapshot_changes_only_when_better():
    inc = Incident("i", "garbage", "walk", (0, 0, 1, 1), T0, T0, 1, 1, 0.5)
    v = violation()
    inc.offer(snapshot(v, 0.3))
    inc.offer(snapshot(v, 0.2))
    assert inc.best.quality == 0.3 and inc.best_version == 1
    inc.offer(snapshot(v, 0.4))
    assert inc.best.quality == 0.4 and inc.best_version == 2


def test_snapshot_quality_is_score_times_size_and_a_fifth_when_cut_by_the_edge():
    whole = snapshot_quality(violation(box=(100, 100, 260, 220), score=0.5), 640, 480, 4)  # a sixteenth of the frame
    assert whole == pytest.approx(0.5 * 0.25)
    assert snapshot_quality(violation(box=(4, 100, 164, 220), score=0.5), 640, 480, 4) == pytest.approx(whole * 0.2)
    assert snapshot_quality(violation(box=(5, 100, 165, 220), score=0.5), 640, 480, 4) == pytest.approx(whole)
    assert snapshot_quality(violation(box=(480, 360, 640, 480), score=0.5), 640, 480, 0) == pytest.approx(whole * 0.2)


# ---- patrol photos --------------------------------------------------------------------------------------

HERE = GeoPoint(lat=30.26105, lon=120.14610)
NEAR = GeoPoint(lat=30.26125, lon=120.14610)  # 22 m north
FAR = GeoPoint(lat=30.26145, lon=120.14610)  # 44 m north


def test_patrol_photos_of_one_type_within_radius_and_window_are_one_incident():
    book = PatrolIncidents(PatrolConfig(radius_m=30, window_s=3600))
    [inc] = book.update(T0, HERE, [violation()], snapshot).opened
    assert inc.id == "patrol-garbage-30.26105_120.14610-20261120T220000" and inc.gps == HERE and inc.camera_id is None
    near = book.update(T0 + timedelta(minutes=30), NEAR, [violation()], snapshot)
    assert near.opened == [] and near.updated == [inc] and inc.last_seen == T0 + timedelta(minutes=30)
    assert len(book.update(T0 + timedelta(minutes=31), FAR, [violation()], snapshot).opened) == 1
    assert len(book.update(T0 + timedelta(minutes=32), HERE, [violation(type_="street_vending")], snapshot).opened) == 1
    # an hour after its last photo nothing can join it any more: it ends and the next photo there is new
    ch = book.update(T0 + timedelta(minutes=91), HERE, [violation()], snapshot)
    assert inc in ch.ended and inc.ended and len(ch.opened) == 1 and ch.opened[0].id != inc.id


def test_two_piles_in_one_patrol_photo_are_one_incident():
    book = PatrolIncidents(PatrolConfig())
    ch = book.update(T0, HERE, [violation(), violation(box=(450, 300, 520, 380))], snapshot)
    assert len(ch.opened) == 1 and ch.updated == [] and ch.opened[0].hits == 2

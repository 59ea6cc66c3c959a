"""The violation engine as a whole: frames and detections in, incident reports out; config reloads; patrol photos.

What one module decides is tested beside that module: rules in tests/rules/, zones, fixtures and tracking in
tests/scene/, incident matching in tests/test_incidents.py, evidence files in tests/test_evidence.py. Here the
pieces run together, on detections given directly (see tests/factory.py).
"""

from __future__ import annotations

import os
import time
from datetime import timedelta

import pytest

from pipeline.config import ConfigSource
from pipeline.domain import GeoPoint
from pipeline.engine import Engine
from pipeline.source.frames import Frame

from .factory import CONFIG, IMG, T0, dets, engine, jitter, run


def pile_scene(t):
    objs = []
    if 60 <= t < 600:
        objs.append(("garbage", jitter((250, 300, 350, 380), t), 0.7))
    x = (t * 20) % 640  # a passer-by with a bag
    objs += [("person", (x, 150, x + 40, 300), 0.9), ("garbage", (x + 20, 250, x + 45, 290), 0.6)]
    return objs


@pytest.mark.slow
@pytest.mark.parametrize("dropout, seed", [(0.0, 0), (0.3, 1), (0.3, 2), (0.3, 3)])
def test_garbage_pile_is_one_incident_despite_dropouts(dropout, seed):
    incidents = run(engine(), pile_scene, 800, dropout=dropout, seed=seed)
    assert len(incidents) == 1, list(incidents)
    [r] = incidents.values()
    assert r.type == "garbage" and r.zone_id == "walk" and r.ended
    assert 0 <= (r.first_seen - T0).total_seconds() - 60 <= 10
    assert 580 <= (r.last_seen - T0).total_seconds() < 600
    assert r.location.point == "P1" and r.owner == "张伟" and r.camera_id == "cam"


@pytest.mark.slow
def test_same_footage_gives_same_incident_ids_at_any_speed():
    a = run(engine(), pile_scene, 800, dropout=0.3, seed=5)
    time.sleep(0.01)
    b = run(engine(), pile_scene, 800, dropout=0.3, seed=5)
    assert list(a) == list(b) and a[next(iter(a))].first_seen == b[next(iter(b))].first_seen


def test_an_open_incident_is_re_reported_every_report_every_s_at_once_when_worse_and_once_ended():
    """Between those, frames that only extend the incident report nothing (report_every_s: 300 by default)."""
    e = engine()
    log = []
    for t in range(0, 1101, 10):  # a frame every 10 s
        objs = [("garbage", (250, 300, 350, 380), 0.7)] if t < 1000 else []
        if 500 <= t < 1000:  # a second bag joins the pile; it counts once it has stood 120 s (t=620)
            objs.append(("garbage", (352, 300, 400, 380), 0.6))
        res = e.process(Frame(IMG, T0 + timedelta(seconds=t), "cam"), dets(*objs))
        log += [(t, kind, r.incident_id, r.count) for kind in ("opened", "updated", "ended") for r in getattr(res, kind)]
    iid = "cam-garbage-walk-20261120T220000"
    assert log == [
        (120, "opened", iid, 1),  # after min_dwell_s
        (420, "updated", iid, 1),  # report_every_s later
        (620, "updated", iid, 2),  # the pile grew: at once
        (920, "updated", iid, 2),
        (1060, "ended", iid, 2),  # last seen at 990, absent for more than end_after_s (60)
    ]


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


def rewrite(path, text: str) -> None:
    """Edit the config in place with its mtime a second on, as an edit a moment later would leave it (a rewrite
    of the same size within one mtime tick would look unchanged; a sleep only makes that unlikely)."""
    before = path.stat().st_mtime_ns
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(before + 10**9, before + 10**9))


def test_config_reload_without_restart(tmp_path):
    path = tmp_path / "cams.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    e = Engine(ConfigSource(path))
    pile = dets(("garbage", (400, 300, 460, 380), 0.8))
    for t in range(0, 20, 2):
        e.process(Frame(IMG, T0 + timedelta(seconds=t), "cam"), pile)
    rewrite(path, CONFIG.replace("[560, 200], [640, 200], [640, 480], [560, 480]", "[380, 200], [640, 200], [640, 480], [380, 480]"))
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
    rewrite(path, CONFIG.replace("id: cam\n", "id: cam-renamed\n"))
    assert e.config.cameras[0].id == "cam-renamed"
    [report] = e.flush()
    assert report.incident_id == opened[0].incident_id and report.location.point == "P1"


def test_unknown_camera_and_missing_detector():
    e = engine()
    with pytest.raises(KeyError, match="unknown camera 'nope'"):
        e.process(Frame(IMG, T0, "nope"), dets())
    with pytest.raises(ValueError, match="no detector"):
        e.process(Frame(IMG, T0, "cam"))


def test_present_is_worked_out_when_asked_and_travels_pickled():
    """`FrameResult.present` (auto-verification's view) is computed on first use from the frame's rule context,
    equal to the rules' `present`; a pickled result (a Ray owner's reply) carries it without the context."""
    import pickle

    from pipeline.rules import present

    e = engine()
    result = e.process(Frame(IMG, T0, "cam"), dets(("garbage", (100, 300, 180, 380), 0.8), ("garbage", (300, 300, 370, 370), 0.7)))
    assert "present" not in result.__dict__  # nothing worked out yet
    expected = present(result.context)
    assert expected and result.present == expected
    again = pickle.loads(pickle.dumps(result))
    assert again.context is None and again.present == expected

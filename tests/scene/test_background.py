"""Static objects (what is new and stays put) on generated clips of a real street: noise and drift, a car that
parks, a person who lingers, a stall that appears and stays, one that is cleared, a camera that moves, and dark,
frozen and corrupt frames; through the engine, the change gate and a resume from a checkpoint."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pytest

from pipeline.config import StaticConfig, parse_config
from pipeline.engine import Engine
from pipeline.source.sampling import ImageTicks, gated
from pipeline.scene.background import STATIC_CLASS, StaticScene

from ..factory import CONFIG
from .clips import START, STALL_BOX, Clip, MarkedDetector, Thing, crop, mark, person_crop

VISITOR_BOX = (400, 80, 436, 170)  # beside the stall, inside the market zone


def stall(appear_s=60.0, vanish_s=1e9) -> Thing:
    return Thing(crop(), STALL_BOX, appear_s, vanish_s)  # no class: only the static scene sees it


def visitor(appear_s=200.0, vanish_s=260.0) -> Thing:
    return Thing(person_crop(), VISITOR_BOX, appear_s, vanish_s, seen_as=("person", 0.85))


def gated_frames(clip: Clip, seconds: float, config=None) -> list:
    """The clip through the night job's change gate (and `MarkedDetector`), as `streetorder run` feeds it."""
    config = config or parse_config(CONFIG)
    ticks = ImageTicks(lambda t: mark(clip.image(t), clip._key(t)), 2.0, int(seconds // 2) + 1)
    return list(gated(ticks, config.camera("cam"), MarkedDetector(clip), START, 640, 480, rules=config.rules))


@pytest.fixture(params=[pytest.param(False, marks=pytest.mark.slow), True], ids=["every-frame", "gated"])  # the gated run is the quick one
def gate(request) -> bool:
    return request.param


def run_clip(clip: Clip, seconds: float, engine: Engine | None = None, frames=None, gate: bool = False):
    engine = engine or Engine(parse_config(CONFIG))
    if gate and frames is None:
        frames = gated_frames(clip, seconds, engine.config)
    final, statics = {}, []
    for frame, d in frames if frames is not None else clip.frames(seconds):
        result = engine.process(frame, d)
        statics.append(int((result.detections.data["class_name"] == STATIC_CLASS).sum()) if len(result.detections) else 0)
        for r in result.reports:
            final[r.incident_id] = r
    for r in engine.flush():
        final[r.incident_id] = r
    return final, statics, engine


def test_noise_and_brightness_drift_make_no_static_object(gate):
    incidents, statics, engine = run_clip(Clip(noise=4.0, drift=0.25), 1200, gate=gate)
    assert incidents == {} and max(statics) == 0
    assert engine.cameras["cam"].static.resets == 0


def test_a_stall_that_appears_and_stays_with_people_coming_by_is_one_vending_incident(gate):
    incidents, statics, engine = run_clip(Clip([stall(), visitor()]), 600, gate=gate)
    [inc] = incidents.values()
    assert inc.type == "street_vending" and inc.zone_id == "market"
    assert abs((inc.first_seen - START).total_seconds() - 60) <= 10  # when it appeared, not when it was noticed
    assert (inc.last_seen - START).total_seconds() >= 590 and not inc.ended
    x1, y1, x2, y2 = inc.box
    assert abs(x1 - STALL_BOX[0]) < 12 and abs(y2 - STALL_BOX[3]) < 12  # the region, from the 192 px copy
    assert statics[-1] == 1  # one object (its parts may show apart for a frame or two as it settles)


def test_a_picture_without_sensor_noise_is_a_still_scene_not_a_frozen_stream(gate):
    # a composed (or flat-compressed) stream repeats itself exactly wherever nothing moves: the stall still counts
    incidents, _, engine = run_clip(Clip([stall(), visitor()], noise=0.0, drift=0.0), 600, gate=gate)
    assert [i.type for i in incidents.values()] == ["street_vending"]
    assert engine.cameras["cam"].static.skipped["frozen"] == 0


def test_without_anyone_coming_by_a_new_thing_is_no_stall(gate):
    incidents, statics, _ = run_clip(Clip([stall()]), 600, gate=gate)
    assert incidents == {} and statics[-1] == 1  # seen as a static object, not taken for a stall


@pytest.mark.slow
def test_a_new_thing_nobody_comes_by_is_materials_piled_once_it_stayed_its_longer_dwell():
    engine = Engine(parse_config(CONFIG.replace("rules:\n", "rules:\n  materials_piled: {min_dwell_s: 300}\n")))
    incidents, _, _ = run_clip(Clip([stall()]), 600, engine=engine)
    [inc] = incidents.values()
    assert inc.type == "materials_piled" and inc.zone_id == "market"
    assert abs((inc.first_seen - START).total_seconds() - 60) <= 10
    # people coming by make the same thing a stall: vending, not materials
    engine = Engine(parse_config(CONFIG.replace("rules:\n", "rules:\n  materials_piled: {min_dwell_s: 300}\n")))
    incidents, _, _ = run_clip(Clip([stall(), visitor()]), 600, engine=engine)
    assert sorted(i.type for i in incidents.values()) == ["street_vending"]


def test_a_cleared_stall_ends_its_incident_and_leaves_no_ghost(gate):
    incidents, statics, _ = run_clip(Clip([stall(vanish_s=400.0), visitor()]), 700, gate=gate)
    [inc] = incidents.values()
    assert inc.ended and 390 <= (inc.last_seen - START).total_seconds() <= 400
    assert statics[-1] == 0 and max(statics[len(statics) // 2 + 40 :]) == 0


def test_a_car_that_parks_is_not_a_stall(gate):
    car = Thing(crop(box=(0, 200, 640, 640)), STALL_BOX, 60.0, seen_as=("car", 0.8))
    incidents, statics, _ = run_clip(Clip([car, visitor()]), 600, gate=gate)
    assert incidents == {}
    assert statics[-1] == 1  # the static scene sees it; the detector explains it


def test_a_person_who_lingers_is_not_a_stall(gate):
    lingerer = Thing(person_crop(), (470, 50, 510, 170), 60.0, seen_as=("person", 0.85))
    incidents, statics, _ = run_clip(Clip([lingerer]), 600, gate=gate)
    assert incidents == {}


def test_a_moved_camera_starts_afresh_instead_of_flooding_proposals(gate):
    incidents, statics, engine = run_clip(Clip(shift_at=300.0), 700, gate=gate)
    assert incidents == {} and max(statics) == 0
    assert engine.cameras["cam"].static.resets == 1


@pytest.mark.parametrize("trouble", [{"dark": (100.0, 700.0)}, {"frozen": (62.0, 700.0)}, {"corrupt_at": tuple(float(t) for t in range(100, 700, 50))}])
def test_dark_frozen_and_corrupt_frames_never_become_a_static_object(trouble, gate):
    # a passer-by is in the picture when it freezes, goes dark or glitches: none of it may stay put
    walker = Thing(person_crop(), (420, 60, 460, 180), 40.0, 64.0, seen_as=("person", 0.85))
    incidents, statics, engine = run_clip(Clip([walker], **trouble), 700, gate=gate)
    assert incidents == {} and max(statics) == 0
    static = engine.cameras["cam"].static
    if "dark" in trouble or "frozen" in trouble:
        assert static.skipped["dark" if "dark" in trouble else "frozen"] > (5 if gate else 100)  # the gate skips most
    assert static.resets == 0


@pytest.mark.slow
def test_frozen_and_dark_stretches_do_not_count_as_staying():
    # the stall appears, then the stream freezes for 20 minutes: only live time counts towards its dwell
    cfg = StaticConfig()
    scene = StaticScene(cfg, 640, 480)
    clip = Clip([stall(appear_s=10.0)])
    for t in range(0, 100, 2):
        scene.update(clip.image(float(t)), START + timedelta(seconds=t))
    still = clip.image(100.0)
    for t in range(100, 1300, 2):
        standing = scene.update(still, START + timedelta(seconds=t))
        assert len(standing) == (1 if t - 100 <= cfg.max_gap_s else 0)  # reported through a short gap only (100: last live)
    for t in range(1300, 1340, 2):  # live again
        standing = scene.update(clip.image(float(t)), START + timedelta(seconds=t))
    [obj] = standing
    assert 88 + cfg.max_gap_s <= obj.dwell_s(START + timedelta(seconds=1338)) <= 90 + cfg.max_gap_s + 40


@pytest.mark.slow
def test_the_change_gate_and_a_resume_give_the_same_incident():
    clip = Clip([stall(), visitor()])
    plain, _, _ = run_clip(clip, 600)
    config = parse_config(CONFIG)
    camera = config.camera("cam")
    keys = {float(t): clip._key(float(t)) for t in np.arange(0, 601, 2.0)}
    ticks = ImageTicks(lambda t: mark(clip.image(t), keys[t]), 2.0, 301)
    frames = list(gated(ticks, camera, MarkedDetector(clip), START, 640, 480, rules=config.rules))
    assert sum(bool(f.meta.get("reused")) for f, _ in frames) > 100  # the gate did skip most of them
    through_gate, _, _ = run_clip(clip, 600, frames=frames)
    # resume: half the clip, the state through a checkpoint into a fresh engine, then the rest
    all_frames = list(clip.frames(600))
    first = Engine(config)
    run_clip(clip, 0, engine=first, frames=all_frames[:150])
    second = Engine(config)
    second.restore(first.snapshot())
    resumed, _, _ = run_clip(clip, 0, engine=second, frames=all_frames[150:])
    for got in (through_gate, resumed):
        [a], [b] = plain.values(), got.values()
        assert (a.type, a.zone_id, a.incident_id) == (b.type, b.zone_id, b.incident_id)
        assert abs((a.first_seen - b.first_seen).total_seconds()) <= 4


@pytest.mark.slow
def test_a_static_stall_goes_to_review_as_a_stall_proposal_and_becomes_a_sample(tmp_path):
    """The reviewer's loop: a vending case from a static object offers its region as a `stall` box; dispatched
    as is, it is a confirmed stall label; a rejected one is a hard negative."""
    from pipeline.cases import CaseStore, LedgerConfig
    from pipeline.cases.case_frames import case_frame
    from pipeline.review.decisions import dispatch, reject
    from pipeline.samples.labels import label_classes
    from pipeline.samples.exchange import export_samples

    store = CaseStore.open(LedgerConfig(database_url=f"sqlite:///{tmp_path / 'l.db'}", evidence_dir=tmp_path / "evidence"))
    try:
        for camera in ("cam", "cam2"):
            config = parse_config(CONFIG.replace("  - id: cam\n", f"  - id: {camera}\n").replace("point: P1", f"point: {camera}-P1").replace("30.26108", "30.26108" if camera == "cam" else "30.27108"))
            engine = Engine(config, evidence_dir=tmp_path / "work")
            for frame, d in Clip([stall(), visitor()]).frames(400):
                frame.camera_id = camera
                for r in engine.process(frame, d).reports:
                    store.post_incident(r)
        a, b = (store.list(camera_id=c)[0] for c in ("cam", "cam2"))
        frame = case_frame(store, a)
        stalls = [p for p in frame.proposals if p.class_name == "stall"]
        assert len(stalls) == 1 and stalls[0].proposal in frame.violation
        assert box_iou_1(stalls[0].box, STALL_BOX) > 0.7
        dispatch(store, a.id, actor="office", owner="王强")
        reject(store, b.id, actor="office", reason="a delivery, gone in an hour")
        report = export_samples(store, None, tmp_path / "samples", classes=label_classes())
        manifest = json.loads((report.version / "manifest.json").read_text())
        by_case = {s["case"]: s for s in manifest["samples"]}
        assert [b_["class_name"] for b_ in by_case[a.id]["labels"] if b_["origin"] == "confirmed"] == ["stall"]
        assert [n["class_name"] for n in by_case[b.id]["negatives"]] == ["stall"]
    finally:
        store.close()


def box_iou_1(a, b) -> float:
    from pipeline.geometry import box_iou

    return float(box_iou(np.array([a], float), np.array([b], float))[0, 0])

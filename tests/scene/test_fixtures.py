"""Fixtures: known, allowed static things of a camera (a bin that belongs there, a permitted kiosk) whose
detections are dropped before tracking, as are those in an ignore mask."""

from __future__ import annotations

from pipeline.config import Fixture
from pipeline.scene.fixtures import fixture_mask

from ..factory import camera, dets, engine, run


def with_fixtures(*fixtures: Fixture):
    return camera().model_copy(update={"fixtures": fixtures})


# ---- through the engine ---------------------------------------------------------------------------------


def test_fixture_and_ignore_mask_suppress():
    fixture = lambda t: [("garbage", (22, 302, 79, 378), 0.8)]
    assert run(engine(), fixture, 300) == {}
    masked = lambda t: [("garbage", (570, 300, 630, 380), 0.8)]
    assert run(engine(), masked, 300) == {}
    # the same box in an unmasked place is a violation: the suppression above is not an accident
    assert len(run(engine(), lambda t: [("garbage", (400, 300, 460, 380), 0.8)], 300)) == 1


# ---- the mask on one frame ------------------------------------------------------------------------------


def test_a_fixture_drops_its_classes_where_it_stands():
    """The test camera's bin: box (20, 300)-(80, 380), classes [garbage], min_iou 0.4."""
    d = dets(
        ("garbage", (22, 302, 79, 378), 0.8),  # the bin itself
        ("person", (22, 302, 79, 378), 0.9),  # someone in front of it: not a class it covers
        ("garbage", (50, 300, 110, 380), 0.8),  # half off it: IoU 1/3
        ("garbage", (300, 300, 360, 380), 0.8),  # elsewhere
    )
    assert fixture_mask(d, camera(), 640, 480).tolist() == [True, False, False, False]


def test_min_iou_decides_how_well_a_box_must_match():
    d = dets(("garbage", (30, 300, 90, 380), 0.8))  # 50 of 70 px wide in common: IoU 5/7
    assert fixture_mask(d, with_fixtures(Fixture(id="bin", box=(20, 300, 80, 380), min_iou=0.7)), 640, 480).tolist() == [True]
    assert fixture_mask(d, with_fixtures(Fixture(id="bin", box=(20, 300, 80, 380), min_iou=0.75)), 640, 480).tolist() == [False]


def test_a_fixture_without_classes_drops_every_class():
    kiosk = with_fixtures(Fixture(id="kiosk", box=(400, 20, 560, 180)))
    d = dets(("stall", (402, 22, 558, 178), 0.9), ("umbrella", (405, 20, 560, 175), 0.7), ("person", (0, 0, 40, 100), 0.9))
    assert fixture_mask(d, kiosk, 640, 480).tolist() == [True, True, False]


def test_fixture_boxes_scale_with_the_frame_size():
    # pixel boxes are in the camera resolution (640 x 480): the bin is at (40, 600)-(160, 760) on a 1280 x 960 frame
    assert fixture_mask(dets(("garbage", (40, 600, 160, 760), 0.8)), camera(), 1280, 960).tolist() == [True]
    assert fixture_mask(dets(("garbage", (20, 300, 80, 380), 0.8)), camera(), 1280, 960).tolist() == [False]
    # normalized boxes are in 0..1 of whatever frame arrives
    rack = with_fixtures(Fixture(id="rack", box=(0.5, 0.5, 0.75, 1.0), coords="normalized", classes=("bicycle",)))
    assert fixture_mask(dets(("bicycle", (500, 250, 750, 500), 0.8)), rack, 1000, 500).tolist() == [True]
    assert fixture_mask(dets(("bicycle", (320, 240, 480, 480), 0.8)), rack, 640, 480).tolist() == [True]


def test_nothing_to_mask():
    assert fixture_mask(dets(), camera(), 640, 480).shape == (0,)
    assert fixture_mask(dets(("garbage", (22, 302, 79, 378), 0.8)), with_fixtures(), 640, 480).tolist() == [False]

"""Exposed garbage: a pile (touching garbage boxes) that has stood in a watched zone for the dwell time and is
not in someone's hand; severity rises with its share of the frame."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pipeline.rules.garbage import garbage

from ..factory import T0, camera, context, engine, run

PILE = ("garbage", (250, 300, 350, 380), 0.7)  # 100 x 80: 2.6% of the 640 x 480 frame


# ---- through the engine ---------------------------------------------------------------------------------


def test_short_stay_is_no_violation_and_a_moving_bag_neither():
    scene = lambda t: [("garbage", (250, 300, 350, 380), 0.7)] if 60 <= t < 150 else []
    assert run(engine(), scene, 400) == {}
    walker = lambda t: [("person", (t * 3, 150, t * 3 + 40, 300), 0.9), ("garbage", (t * 3 + 10, 250, t * 3 + 35, 290), 0.6)]
    assert run(engine(), walker, 200, step=2) == {}


# ---- the rule on one frame ------------------------------------------------------------------------------


def test_a_pile_that_stood_for_min_dwell_s_is_a_violation():
    assert garbage(context((*PILE, 119))) == []
    [v] = garbage(context((*PILE, 120)))
    assert (v.type, v.zone_id, v.box, v.count, v.severity, v.members) == ("garbage", "walk", (250.0, 300.0, 350.0, 380.0), 1, 1, (0,))
    assert v.since == T0 - timedelta(seconds=120) and v.score == pytest.approx(0.7)


@pytest.mark.parametrize(
    "box, severity",
    [
        ((250, 300, 400, 400), 1),  # 150 x 100: 4.9% of the frame
        ((250, 300, 410, 400), 2),  # 160 x 100: 5.2% (severity_area 0.05)
        ((200, 250, 500, 400), 2),  # 300 x 150: 14.6%
        ((200, 250, 510, 400), 3),  # 310 x 150: 15.1% (0.15)
    ],
)
def test_severity_follows_the_share_of_the_frame(box, severity):
    [v] = garbage(context(("garbage", box, 0.7, 600)))
    assert v.severity == severity


def test_touching_boxes_are_one_pile_and_apart_are_two():
    beside = ("garbage", (355, 310, 400, 380), 0.8, 200)  # a 5 px gap: within reach (0.2 of its size)
    [v] = garbage(context((*PILE, 300), beside))
    assert v.members == (0, 1) and v.count == 2 and v.box == (250.0, 300.0, 400.0, 380.0)
    assert v.score == pytest.approx(0.8) and v.since == T0 - timedelta(seconds=300)
    far = ("garbage", (450, 300, 500, 380), 0.8, 200)
    assert sorted(v.members for v in garbage(context((*PILE, 300), far))) == [(0,), (1,)]


def test_a_bag_in_hand_is_not_exposed_garbage():
    carrier = ("person", (230, 150, 300, 400), 0.9, 300)
    bag = ("garbage", (240, 300, 290, 350), 0.6, 300)  # wholly inside the person box
    assert garbage(context(bag, carrier)) == []
    set_down = ("garbage", (280, 330, 340, 390), 0.6, 300)  # a third of it inside: carried_overlap is 0.5
    assert len(garbage(context(set_down, carrier))) == 1


def test_only_garbage_classes_above_min_score_in_a_watched_zone():
    assert garbage(context(("garbage", PILE[1], 0.3, 600))) == []  # min_score 0.35
    assert garbage(context(("garbage_bin", PILE[1], 0.9, 600))) == []  # a bin is not garbage
    assert len(garbage(context(("overflow", PILE[1], 0.9, 600)))) == 1
    assert garbage(context(("garbage", (250, 100, 350, 180), 0.9, 600))) == []  # in the parking bay, not the pavement


def test_a_zone_override_shortens_the_dwell_there():
    quick = "      - {id: door, kind: garbage_watch, polygon: [[0, 0], [200, 0], [200, 190], [0, 190]], overrides: {garbage: {min_dwell_s: 30}}}\n"
    cam = camera(quick)
    [v] = garbage(context(("garbage", (50, 100, 150, 180), 0.7, 30), (*PILE, 30), cam=cam))
    assert v.zone_id == "door" and v.members == (0,)  # the pile on the pavement still needs 120 s

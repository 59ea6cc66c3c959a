"""What is physically there for auto-verification: each rule's evidence, with no dwell, count or schedule."""

from __future__ import annotations

from datetime import datetime

from pipeline.rules import evaluate, present

from ..factory import TZ, context

EVENING = datetime(2026, 11, 21, 19, 0, tzinfo=TZ)  # the market zone's allowed hours
UMBRELLA = ("umbrella", (430, 40, 520, 100), 0.7, 0)
PILE = ("garbage", (250, 300, 350, 380), 0.7, 0)
BIKE = ("bicycle", (300, 100, 335, 180), 0.8, 0)  # outside the bay


def test_what_is_there_is_present_before_it_is_a_violation():
    """A fresh pile, an unattended umbrella in the market's open hours, one bike outside the bay: no violation
    yet, yet each is present, as the box of its group."""
    ctx = context(UMBRELLA, PILE, BIKE, at=EVENING)
    assert evaluate(ctx) == []
    assert sorted(present(ctx)) == [
        ("garbage", (250.0, 300.0, 350.0, 380.0)),
        ("non_motor_parking", (300.0, 100.0, 335.0, 180.0)),
        ("street_vending", (430.0, 40.0, 520.0, 100.0)),
    ]


def test_things_of_one_stall_or_pile_are_one_box_and_faint_ones_none():
    chair = ("chair", (440, 110, 480, 170), 0.6, 0)
    bag = ("garbage", (355, 310, 400, 380), 0.6, 0)
    faint = ("garbage", (500, 300, 540, 340), 0.2, 0)  # below the garbage rule's min_score
    assert sorted(present(context(UMBRELLA, chair, PILE, bag, faint))) == [
        ("garbage", (250.0, 300.0, 400.0, 380.0)),
        ("street_vending", (430.0, 40.0, 520.0, 170.0)),
    ]


def test_parked_vehicles_are_present_only_where_they_should_not_be():
    in_bay = [("bicycle", (20 + 40 * i, 100, 55 + 40 * i, 180), 0.8, 600) for i in range(4)]
    assert present(context(*in_bay)) == []
    outside = ("motorcycle", (420, 300, 470, 400), 0.8, 0)
    assert present(context(*in_bay, BIKE, outside)) == [("non_motor_parking", (300.0, 100.0, 470.0, 400.0))]


def test_a_patrol_photo_has_no_bays_so_no_parking_presence():
    assert sorted(present(context(UMBRELLA, BIKE, patrol=True))) == [("street_vending", (430.0, 40.0, 520.0, 100.0))]

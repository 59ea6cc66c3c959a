"""Street vending: a stall (a stall class alone, or stall things with a stationary vendor) in a no_vending zone,
outside the zone's allowed hours."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from pipeline.config import parse_config
from pipeline.engine import Engine
from pipeline.rules.vending import street_vending

from ..factory import CONFIG, TZ, context, engine, run

MORNING = datetime(2026, 11, 21, 10, 0, tzinfo=TZ)  # the market zone allows vending 18:00-23:00 only
UMBRELLA = ("umbrella", (430, 40, 520, 100), 0.7)
CHAIR = ("chair", (440, 110, 480, 170), 0.6)
VENDOR = ("person", (490, 60, 530, 180), 0.85)


# ---- through the engine ---------------------------------------------------------------------------------


def stall_scene(t):
    return [("umbrella", (430, 40, 520, 100), 0.7), ("chair", (440, 110, 480, 170), 0.6), ("person", (490, 60, 530, 180), 0.85)]


@pytest.mark.slow
def test_stall_in_forbidden_hours_only():
    forbidden = run(engine(), stall_scene, 600, start=datetime(2026, 11, 21, 10, 0, tzinfo=TZ))
    assert len(forbidden) == 1 and next(iter(forbidden.values())).type == "street_vending"
    assert run(engine(), stall_scene, 600, start=datetime(2026, 11, 21, 19, 0, tzinfo=TZ)) == {}
    # the schedule is read in the camera's local time, whatever zone the timestamp carries
    utc_10am_local = datetime(2026, 11, 21, 2, 0, tzinfo=ZoneInfo("UTC"))
    assert len(run(engine(), stall_scene, 600, start=utc_10am_local)) == 1


@pytest.mark.slow
def test_stall_needs_a_person_unless_the_class_is_a_stall_by_itself():
    chair_alone = lambda t: stall_scene(t)[1:2]
    assert run(engine(), chair_alone, 600, start=datetime(2026, 11, 21, 10, 0, tzinfo=TZ)) == {}
    # a market umbrella that stood still for the dwell is a stall without a vendor in view (a walker's moves)
    umbrella_alone = lambda t: stall_scene(t)[:1]
    assert len(run(engine(), umbrella_alone, 600, start=datetime(2026, 11, 21, 10, 0, tzinfo=TZ))) == 1
    walking = lambda t: [("umbrella", (430 - t, 40, 520 - t, 100), 0.7)]
    assert run(engine(), walking, 400, start=datetime(2026, 11, 21, 10, 0, tzinfo=TZ)) == {}
    # a retrained model's 'stall' class feeds the rule with no code change
    stall_class = lambda t: [("stall", (430, 40, 560, 170), 0.7)]
    assert len(run(engine(), stall_class, 600, start=datetime(2026, 11, 21, 10, 0, tzinfo=TZ))) == 1
    # and the class-to-rule mapping is config: without 'chair' and 'umbrella' as stall evidence, no violation
    narrowed = Engine(parse_config(CONFIG.replace("street_vending: {min_dwell_s: 120}", "street_vending: {min_dwell_s: 120, attended_classes: [bench], still_alone_classes: []}")))
    assert run(narrowed, stall_scene, 600, start=datetime(2026, 11, 21, 10, 0, tzinfo=TZ)) == {}


# ---- the rule on one frame ------------------------------------------------------------------------------


def test_an_attended_stall_is_one_violation_of_its_things():
    [v] = street_vending(context((*UMBRELLA, 300), (*CHAIR, 200), (*VENDOR, 300), at=MORNING))
    assert (v.type, v.zone_id, v.members, v.count, v.severity) == ("street_vending", "market", (0, 1), 2, 1)
    assert v.box == (430.0, 40.0, 520.0, 170.0)  # the umbrella and the chair, not the vendor
    assert v.score == pytest.approx(0.7)
    assert v.since == MORNING - timedelta(seconds=300)  # when the first of its things settled


def test_three_things_of_one_stall_are_severity_2():
    table = ("dining table", (450, 120, 500, 160), 0.6, 300)
    [v] = street_vending(context((*UMBRELLA, 300), (*CHAIR, 300), table, (*VENDOR, 300), at=MORNING))
    assert v.members == (0, 1, 2) and v.severity == 2


TABLE = ("dining table", (430, 40, 520, 100), 0.7)  # attended only: a table is a stall with its vendor


def test_stall_things_must_stand_for_min_dwell_s():
    assert street_vending(context((*UMBRELLA, 119), (*VENDOR, 300), at=MORNING)) == []
    assert len(street_vending(context((*UMBRELLA, 120), (*VENDOR, 300), at=MORNING))) == 1


def test_the_vendor_must_be_still_for_a_minute_and_within_reach():
    assert street_vending(context((*TABLE, 300), (*VENDOR, 59), at=MORNING)) == []  # a passer-by
    assert len(street_vending(context((*TABLE, 300), (*VENDOR, 60), at=MORNING))) == 1
    # person_reach 1.0: the gap may be up to one stall size (the table is 90 px wide)
    assert len(street_vending(context((*TABLE, 300), ("person", (610, 40, 630, 120), 0.85, 300), at=MORNING))) == 1  # gap 90
    assert street_vending(context((*TABLE, 300), ("person", (430, 195, 470, 300), 0.85, 300), at=MORNING)) == []  # gap 95


def test_a_stall_class_needs_no_vendor_and_a_weak_one_is_ignored():
    [v] = street_vending(context(("stall", (430, 40, 560, 170), 0.7, 300), at=MORNING))
    assert v.members == (0,) and v.severity == 1
    assert street_vending(context(("stall", (430, 40, 560, 170), 0.3, 300), at=MORNING)) == []  # below min_score 0.35


def test_only_inside_a_no_vending_zone_and_outside_its_allowed_hours():
    # standing (bottom centre) in the parking bay, not the market
    assert street_vending(context(("stall", (100, 40, 180, 170), 0.7, 300), at=MORNING)) == []
    stall = ("stall", (430, 40, 560, 170), 0.7, 300)
    assert street_vending(context(stall, at=MORNING.replace(hour=18))) == []  # the market is open
    assert street_vending(context(stall, at=MORNING.replace(hour=22, minute=59))) == []
    assert len(street_vending(context(stall, at=MORNING.replace(hour=23)))) == 1  # closed again


def test_the_stall_rule_can_be_switched_off():
    rules = parse_config(CONFIG.replace("street_vending: {min_dwell_s: 120}", "street_vending: {min_dwell_s: 120, enabled: false}")).rules
    assert street_vending(context(("stall", (430, 40, 560, 170), 0.7, 300), at=MORNING, rules=rules)) == []

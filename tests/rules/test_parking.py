"""Messy non-motor parking: enough stationary bicycles and motorcycles outside the parking bays, or inside a
no_parking zone; one violation per zone, its severity rising with the count."""

from __future__ import annotations

import pytest

from pipeline.rules import OUTSIDE_BAYS, PATROL_ZONE
from pipeline.rules.parking import non_motor_parking

from ..factory import T0, camera, context, engine, run

NO_PARKING = "      - {id: gate, kind: no_parking, polygon: [[220, 200], [400, 200], [400, 480], [220, 480]]}\n"


def moto(i: int, still_s: float = 60, score: float = 0.8, x0: int = 220):
    """The i-th of a row of motorcycles 60 px apart on the pavement, outside the bay, from x0."""
    return ("motorcycle", (x0 + 60 * i, 300, x0 + 50 + 60 * i, 400), score, still_s)


# ---- through the engine ---------------------------------------------------------------------------------


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


# ---- the rule on one frame ------------------------------------------------------------------------------


@pytest.mark.parametrize("n, severity", [(3, 1), (4, 2), (5, 3)])  # min_count 3, severity_counts [4, 5]
def test_severity_rises_with_the_count_outside_the_bays(n, severity):
    [v] = non_motor_parking(context(*[moto(i) for i in range(n)]))
    assert (v.zone_id, v.count, v.severity, v.members) == (OUTSIDE_BAYS, n, severity, tuple(range(n)))
    assert v.box == (220.0, 300.0, 220 + 60 * (n - 1) + 50.0, 400.0)


def test_too_few_too_fresh_or_too_faint_is_no_violation():
    assert non_motor_parking(context(moto(0), moto(1))) == []  # min_count 3
    assert non_motor_parking(context(moto(0), moto(1), moto(2, still_s=59))) == []  # min_dwell_s 60
    assert non_motor_parking(context(moto(0), moto(1), moto(2, score=0.25))) == []  # min_score 0.3
    assert non_motor_parking(context(moto(0), moto(1), ("car", (540, 300, 620, 400), 0.9, 600))) == []  # not a non-motor vehicle


def test_vehicles_in_the_bay_do_not_count_towards_those_outside():
    in_bay = [("bicycle", (20 + 40 * i, 100, 55 + 40 * i, 180), 0.8, 600) for i in range(4)]
    assert non_motor_parking(context(*in_bay)) == []
    [v] = non_motor_parking(context(*in_bay, moto(0), moto(1), moto(2)))
    assert v.zone_id == OUTSIDE_BAYS and v.members == (4, 5, 6) and v.count == 3


def test_a_no_parking_zone_is_its_own_violation_and_not_outside_the_bays():
    ctx = context(*[moto(i, x0=230) for i in range(3)], *[moto(i, x0=460) for i in range(3)], cam=camera(NO_PARKING))
    # x0=230: three in the gate zone; x0=460: three more beyond it, outside the bays
    violations = {v.zone_id: v for v in non_motor_parking(ctx)}
    assert set(violations) == {"gate", OUTSIDE_BAYS}
    assert violations["gate"].members == (0, 1, 2) and violations[OUTSIDE_BAYS].members == (3, 4, 5)


def test_a_camera_without_bays_has_no_outside_bays_violation():
    cam = camera().model_copy(update={"zones": tuple(z for z in camera().zones if z.kind != "parking_bay")})
    assert non_motor_parking(context(*[moto(i) for i in range(3)], cam=cam)) == []


def test_a_patrol_photo_counts_every_vehicle_in_it_at_once():
    [v] = non_motor_parking(context(*[moto(i, still_s=0) for i in range(3)], patrol=True))
    assert v.zone_id == PATROL_ZONE and v.count == 3 and v.since == T0  # a photo is one moment: no dwell


def test_a_zone_override_replaces_the_rule_threshold():
    gate = NO_PARKING.replace("}\n", ", overrides: {non_motor_parking: {min_count: 1}}}\n")
    [v] = non_motor_parking(context(moto(0, x0=230), cam=camera(gate)))
    assert v.zone_id == "gate" and v.count == 1
    assert non_motor_parking(context(moto(0, x0=230), cam=camera(NO_PARKING))) == []


def test_one_bike_seen_as_bicycle_and_as_motorcycle_counts_once():
    """The count follows the merged boxes: a second box on the same bike (another class, another view) is not a
    second bike; bikes parked side by side (boxes overlapping, IoU 0.2 here) still count apiece."""
    row = [moto(i) for i in range(2)]
    same_bike = ("bicycle", (222, 302, 272, 401), 0.7, 60)  # on the first motorcycle: IoU about 0.9
    assert non_motor_parking(context(*row, same_bike)) == []  # two bikes, under min_count 3
    tight = [("motorcycle", (220 + 30 * i, 300, 270 + 30 * i, 400), 0.8, 60) for i in range(3)]  # 30 px apart: IoU 0.25
    [v] = non_motor_parking(context(*tight))
    assert v.count == 3
    [v] = non_motor_parking(context(*row, moto(2), same_bike))
    assert v.count == 3 and v.members == (0, 1, 2)

"""Zones on the frames that actually arrive: pixel polygons scale from the camera resolution, normalized ones
from 0..1; an object is inside when its bottom centre is; a schedule suspends a zone in camera-local time."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest

from pipeline.scene.zones import CameraZones

from ..factory import TZ, camera, dets

NIGHT_MARKET = "      - {id: night, kind: no_vending, coords: normalized, polygon: [[0, 0.5], [1, 0.5], [1, 1], [0, 1]], schedule: {allowed: ['22:00-02:00']}}\n"


def zone(zones: CameraZones, zone_id: str):
    return next(z for z in zones.zones if z.id == zone_id)


def test_pixel_polygons_scale_with_the_frame_size():
    """The camera is configured at 640 x 480; frames of 1280 x 960 double every vertex."""
    zones = CameraZones(camera(), 1280, 960)
    assert zone(zones, "bay").polygon.tolist() == [[0, 0], [400, 0], [400, 380], [0, 380]]
    assert zone(CameraZones(camera(), 640, 480), "bay").polygon.tolist() == [[0, 0], [200, 0], [200, 190], [0, 190]]
    # a box at (150, 150)-(180, 180) in configured pixels is in the bay at either size
    assert zone(zones, "bay").contains(dets(("bicycle", (300, 300, 360, 360), 0.8))).tolist() == [True]
    assert zone(zones, "bay").contains(dets(("bicycle", (420, 300, 480, 360), 0.8))).tolist() == [False]  # (210, 150) configured


def test_normalized_polygons_follow_the_frame_whatever_the_resolution():
    zones = CameraZones(camera(NIGHT_MARKET), 1000, 500)
    assert zone(zones, "night").polygon.tolist() == [[0, 250], [1000, 250], [1000, 500], [0, 500]]
    zones = CameraZones(camera(NIGHT_MARKET), 320, 240)
    assert zone(zones, "night").polygon.tolist() == [[0, 120], [320, 120], [320, 240], [0, 240]]


def test_an_object_is_where_its_bottom_centre_stands():
    night = zone(CameraZones(camera(NIGHT_MARKET), 1000, 500), "night")
    feet_above = ("umbrella", (100, 100, 200, 240), 0.5)  # most of a tall box may hang over the line...
    feet_inside = ("umbrella", (100, 100, 200, 260), 0.5)  # ...it is the feet that count
    beside = ("umbrella", (-90, 300, 10, 400), 0.5)  # the bottom centre (-40, 400) is off the frame
    assert night.contains(dets(feet_above, feet_inside, beside)).tolist() == [False, True, False]
    assert night.contains(dets()).shape == (0,)


def test_kinds_and_the_ignore_mask():
    zones = CameraZones(camera(), 640, 480)
    assert [z.id for z in zones.of_kind("garbage_watch")] == ["walk"]
    assert [z.id for z in zones.of_kind("no_parking")] == []
    d = dets(("person", (570, 220, 630, 420), 0.9), ("garbage", (400, 300, 460, 380), 0.8), ("garbage", (540, 300, 600, 380), 0.8))
    assert zones.ignored(d).tolist() == [True, False, True]  # the third stands at x=570, inside the mask (560..640)
    assert zones.ignored(dets()).shape == (0,)


@pytest.mark.parametrize(
    "at, active",
    [
        (datetime(2026, 11, 20, 21, 59), True),
        (datetime(2026, 11, 20, 22, 0), False),  # the market opens
        (datetime(2026, 11, 20, 23, 59), False),
        (datetime(2026, 11, 21, 0, 0), False),  # past midnight, still the night before's market
        (datetime(2026, 11, 21, 1, 59), False),
        (datetime(2026, 11, 21, 2, 0), True),  # closed: the zone's rule applies again
        (datetime(2026, 11, 21, 12, 0), True),
    ],
)
def test_a_schedule_across_midnight_suspends_the_zone(at, active):
    night = zone(CameraZones(camera(NIGHT_MARKET), 640, 480), "night")
    assert night.active(at.replace(tzinfo=TZ)) is active


def test_a_schedule_on_some_days_only_and_zones_without_one():
    weekend = NIGHT_MARKET.replace("['22:00-02:00']", "[{start: '22:00', end: '02:00', days: [sat]}]")
    night = zone(CameraZones(camera(weekend), 640, 480), "night")
    assert night.active(datetime(2026, 11, 20, 23, 0, tzinfo=TZ))  # Friday night: no market
    assert not night.active(datetime(2026, 11, 21, 23, 0, tzinfo=TZ))  # Saturday night
    assert not night.active(datetime(2026, 11, 22, 1, 0, tzinfo=TZ))  # early Sunday: Saturday's market
    assert night.active(datetime(2026, 11, 23, 1, 0, tzinfo=TZ))  # early Monday: none on Sunday
    walk = zone(CameraZones(camera(), 640, 480), "walk")
    assert all(walk.active(datetime(2026, 11, 20, h, 0, tzinfo=TZ)) for h in range(24))


def test_polygons_are_integer_pixels():
    zones = CameraZones(camera(), 333, 250)  # 640 x 480 scaled by 0.52: vertices round to whole pixels
    bay = zone(zones, "bay").polygon
    assert bay.dtype == np.int64 and bay.tolist() == [[0, 0], [104, 0], [104, 99], [0, 99]]

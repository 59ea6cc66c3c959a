"""Messy non-motor parking (非机动车乱停放): stationary bicycles and motorcycles outside parking bays or in
no_parking zones, at or above a count."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from ..geometry import box_iou, union_box
from .base import Box, FrameContext, Violation, make_violation, min_count, rule
from .registry import ZoneKindSpec
from .thresholds import RuleThresholds

TYPE = "non_motor_parking"
# Bicycles and motorcycles are cue classes. The rule looks outside the bays: vehicles left outside every bay are
# one region, whose zone id is `OUTSIDE_BAYS`.
PARKING_BAY = ZoneKindSpec("parking_bay", colour=(0, 200, 0), outside="outside_bays", cues=True)
NO_PARKING = ZoneKindSpec("no_parking", colour=(0, 0, 255), cues=True)
OUTSIDE_BAYS = PARKING_BAY.outside


class ParkingRule(RuleThresholds):
    """Messy non-motor parking: stationary bicycles/motorcycles outside parking bays or inside no_parking zones."""

    min_dwell_s: float = Field(300, ge=0, title="Minimum dwell (s)")
    min_count: int = Field(3, ge=1, title="Minimum count")
    min_score: float = Field(0.3, ge=0, le=1, title="Minimum score")
    vehicle_classes: tuple[str, ...] = Field(("bicycle", "motorcycle"), title="Vehicle classes")
    severity_counts: tuple[int, int] = Field((6, 10), title="Severity steps", description="Counts at which severity rises to 2 and to 3")
    same_vehicle_iou: float = Field(
        0.6, gt=0, le=1, title="Same vehicle IoU",
        description="Vehicle boxes overlapping a better-scored one at this IoU or more are the same vehicle (one bike seen as bicycle and as motorcycle, or twice by sliced views): counted once",
    )

    def evidence_classes(self) -> tuple[str, ...]:
        return self.vehicle_classes


def one_per_vehicle(xyxy: np.ndarray, scores: np.ndarray, members: list[int], iou: float) -> list[int]:
    """`members` without those that overlap a better-scored member at IoU >= `iou`: one bike, one count, whatever
    class each view gave it. Distinct parked bikes overlap far less: among the 143 labelled bikes of the
    streets-in photos (dense rows included), no two reach IoU 0.39."""
    if len(members) < 2:
        return members
    idx = np.array(members)
    order = idx[np.argsort(-scores[idx], kind="stable")]
    m = box_iou(xyxy[order], xyxy[order])
    kept: list[int] = []
    for i in range(len(order)):
        if not any(m[i, j] >= iou for j in kept):
            kept.append(i)
    return sorted(int(order[i]) for i in kept)


def _in_any(zones, detections) -> np.ndarray:
    """Per detection: is it inside any of `zones`?"""
    inside = np.zeros(len(detections), dtype=bool)
    for z in zones:
        inside |= z.contains(detections)
    return inside


def parked(ctx: FrameContext) -> list[Box]:
    """Vehicles parked where they should not be, as one box per no_parking zone and one for all outside the bays
    (a camera without zones or bays shows no parking problem)."""
    cfg = ctx.rules.rule(TYPE)
    if ctx.zones is None:
        return []
    d = ctx.detections
    vehicles = ctx.of_class(cfg.vehicle_classes) & (d.confidence >= cfg.min_score)
    in_bay = _in_any(ctx.zones.of_kind(PARKING_BAY.name), d)
    in_no_parking = np.zeros(len(d), dtype=bool)
    out = []
    for z in ctx.zones.of_kind(NO_PARKING.name):
        inside = z.contains(d) & vehicles
        in_no_parking |= inside
        if inside.any():
            out.append(union_box(d.xyxy[inside]))
    outside = vehicles & ~in_bay & ~in_no_parking
    if ctx.zones.of_kind(PARKING_BAY.name) and outside.any():
        out.append(union_box(d.xyxy[outside]))
    return out


@rule(TYPE, thresholds=ParkingRule, zone_kinds=(PARKING_BAY, NO_PARKING), presence=parked, title="Non-motor parking (非机动车乱停放)")
def non_motor_parking(ctx: FrameContext) -> list[Violation]:
    """One violation per zone: each no_parking zone, plus 'outside_bays' when the camera has parking bays.
    Severity rises with the count (`severity_counts`)."""
    cfg = ctx.rules.rule(TYPE)
    if not cfg.enabled:
        return []
    groups = list(ctx.active_zones(NO_PARKING.name, TYPE))
    if not ctx.patrol:
        bays = ctx.zones.of_kind(PARKING_BAY.name)
        if bays:
            in_bay = _in_any(bays, ctx.detections)
            in_no_parking = np.zeros(len(ctx.detections), dtype=bool)
            for _, inside, _ in groups:
                in_no_parking |= inside
            groups.append((OUTSIDE_BAYS, ~in_bay & ~in_no_parking, None))
    out = []
    for zone_id, inside, override in groups:
        members = np.where(ctx.evidence(cfg, cfg.vehicle_classes, inside, override))[0].tolist()
        members = one_per_vehicle(ctx.detections.xyxy, ctx.detections.confidence, members, cfg.same_vehicle_iou)
        if len(members) >= min_count(cfg, override):
            steps = cfg.severity_counts
            severity = 1 + (len(members) >= steps[0]) + (len(members) >= steps[1])
            out.append(make_violation(ctx, TYPE, zone_id, members, severity))
    return out

"""Messy non-motor parking (非机动车乱停放): stationary bicycles and motorcycles outside parking bays or in
no_parking zones, at or above a count."""

from __future__ import annotations

import numpy as np

from ..geometry import union_box
from .base import Box, FrameContext, Violation, make_violation, min_count, rule

TYPE = "non_motor_parking"
OUTSIDE_BAYS = "outside_bays"  # the zone id of vehicles left outside every parking bay


def parked(ctx: FrameContext) -> list[Box]:
    """Vehicles parked where they should not be, as one box per no_parking zone and one for all outside the bays
    (a camera without zones or bays shows no parking problem)."""
    cfg = ctx.rules.non_motor_parking
    if ctx.zones is None:
        return []
    d = ctx.detections
    vehicles = ctx.of_class(cfg.vehicle_classes) & (d.confidence >= cfg.min_score)
    in_bay = np.zeros(len(d), dtype=bool)
    for z in ctx.zones.of_kind("parking_bay"):
        in_bay |= z.contains(d)
    in_no_parking = np.zeros(len(d), dtype=bool)
    out = []
    for z in ctx.zones.of_kind("no_parking"):
        inside = z.contains(d) & vehicles
        in_no_parking |= inside
        if inside.any():
            out.append(union_box(d.xyxy[inside]))
    outside = vehicles & ~in_bay & ~in_no_parking
    if ctx.zones.of_kind("parking_bay") and outside.any():
        out.append(union_box(d.xyxy[outside]))
    return out


@rule(TYPE, presence=parked)
def non_motor_parking(ctx: FrameContext) -> list[Violation]:
    """One violation per zone: each no_parking zone, plus 'outside_bays' when the camera has parking bays.
    Severity rises with the count (`severity_counts`)."""
    cfg = ctx.rules.non_motor_parking
    if not cfg.enabled:
        return []
    groups = list(ctx.active_zones("no_parking", TYPE))
    if not ctx.patrol:
        bays = ctx.zones.of_kind("parking_bay")
        if bays:
            in_bay = np.zeros(len(ctx.detections), dtype=bool)
            for z in bays:
                in_bay |= z.contains(ctx.detections)
            in_no_parking = np.zeros(len(ctx.detections), dtype=bool)
            for _, inside, _ in groups:
                in_no_parking |= inside
            groups.append((OUTSIDE_BAYS, ~in_bay & ~in_no_parking, None))
    out = []
    for zone_id, inside, override in groups:
        members = np.where(ctx.evidence(cfg, cfg.vehicle_classes, inside, override))[0].tolist()
        if len(members) >= min_count(cfg, override):
            steps = cfg.severity_counts
            severity = 1 + (len(members) >= steps[0]) + (len(members) >= steps[1])
            out.append(make_violation(ctx, TYPE, zone_id, members, severity))
    return out

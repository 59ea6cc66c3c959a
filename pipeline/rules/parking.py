"""Messy non-motor parking (非机动车乱停放): stationary bicycles and motorcycles outside parking bays or in
no_parking zones, at or above a count."""

from __future__ import annotations

import numpy as np

from .base import FrameContext, Violation, make_violation, min_count

TYPE = "non_motor_parking"
OUTSIDE_BAYS = "outside_bays"  # the zone id of vehicles left outside every parking bay


def non_motor_parking(ctx: FrameContext) -> list[Violation]:
    """One violation per zone: each no_parking zone, plus 'outside_bays' when the camera has parking bays.
    Severity rises with the count (`severity_counts`)."""
    rule = ctx.rules.non_motor_parking
    if not rule.enabled:
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
        members = np.where(ctx.evidence(rule, rule.vehicle_classes, inside, override))[0].tolist()
        if len(members) >= min_count(rule, override):
            steps = rule.severity_counts
            severity = 1 + (len(members) >= steps[0]) + (len(members) >= steps[1])
            out.append(make_violation(ctx, TYPE, zone_id, members, severity))
    return out

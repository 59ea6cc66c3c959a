"""What is physically present for each violation type in a frame, with no dwell, count or schedule applied.

Auto-verification asks "is the problem still at this spot?", which is a weaker question than "is this a
violation now?": a stall whose vendor stepped away, or a pile a passer-by stands in front of, is still there.
"""

from __future__ import annotations

import numpy as np

from ..geometry import union_box
from .base import FrameContext, clusters


def _groups(ctx: FrameContext, mask: np.ndarray, reach: float) -> list[tuple[float, float, float, float]]:
    idx = np.where(mask)[0]
    return [union_box(ctx.detections.xyxy[idx[g]]) for g in clusters(ctx.detections.xyxy[idx], reach=reach)] if len(idx) else []


def present(ctx: FrameContext) -> list[tuple[str, tuple[float, float, float, float]]]:
    """(violation type, box) for every stall, pile and group of parked vehicles in view."""
    r = ctx.rules
    conf = ctx.detections.confidence
    out: list[tuple[str, tuple]] = []
    stall = ctx.of_class(r.street_vending.standalone_classes + r.street_vending.attended_classes) & (conf >= r.street_vending.min_score)
    out += [("street_vending", b) for b in _groups(ctx, stall, 0.5)]
    pile = ctx.of_class(r.garbage.classes) & (conf >= r.garbage.min_score)
    out += [("garbage", b) for b in _groups(ctx, pile, 0.2)]
    vehicles = ctx.of_class(r.non_motor_parking.vehicle_classes) & (conf >= r.non_motor_parking.min_score)
    if ctx.zones is not None:
        zones = ctx.zones.of_kind("no_parking")
        in_bay = np.zeros(len(ctx.detections), dtype=bool)
        for z in ctx.zones.of_kind("parking_bay"):
            in_bay |= z.contains(ctx.detections)
        in_no_parking = np.zeros(len(ctx.detections), dtype=bool)
        for z in zones:
            inside = z.contains(ctx.detections) & vehicles
            in_no_parking |= inside
            if inside.any():
                out.append(("non_motor_parking", union_box(ctx.detections.xyxy[inside])))
        outside = vehicles & ~in_bay & ~in_no_parking
        if ctx.zones.of_kind("parking_bay") and outside.any():
            out.append(("non_motor_parking", union_box(ctx.detections.xyxy[outside])))
    return out

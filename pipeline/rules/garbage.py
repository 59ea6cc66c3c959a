"""Exposed garbage (暴露垃圾 / 垃圾满溢): garbage or overflow that stays put in a watched zone."""

from __future__ import annotations

import numpy as np

from ..geometry import box_overlap
from .base import FrameContext, Violation, clusters, make_violation, rule

TYPE = "garbage"


@rule(TYPE, reach=0.2)
def garbage(ctx: FrameContext) -> list[Violation]:
    """Each pile (touching garbage boxes grouped) that has stood for the dwell time and is not mostly inside a
    person's box (a bag in hand is not exposed garbage). Severity rises with the pile's share of the frame."""
    cfg = ctx.rules.garbage
    if not cfg.enabled:
        return []
    d = ctx.detections
    carriers = d.xyxy[ctx.of_class(cfg.carrier_classes)]
    carried = box_overlap(d.xyxy, carriers).max(axis=1) >= cfg.carried_overlap if len(carriers) else np.zeros(len(d), dtype=bool)
    out = []
    for zone_id, inside, override in ctx.active_zones("garbage_watch", TYPE):
        piles = np.where(ctx.evidence(cfg, cfg.classes, inside, override) & ~carried)[0].tolist()
        for group in clusters(d.xyxy[piles], reach=0.2):
            members = [piles[g] for g in group]
            share = float(ctx.area_share()[members].sum())
            severity = 1 + (share >= cfg.severity_area[0]) + (share >= cfg.severity_area[1])
            out.append(make_violation(ctx, TYPE, zone_id, members, severity))
    return out

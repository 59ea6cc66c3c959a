"""Exposed garbage (暴露垃圾 / 垃圾满溢): garbage or overflow that stays put in a watched zone."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from ..geometry import box_overlap
from .base import FrameContext, Violation, clusters, make_violation, rule
from .registry import ZoneKindSpec
from .thresholds import RuleThresholds

TYPE = "garbage"
GARBAGE_WATCH = ZoneKindSpec("garbage_watch", colour=(255, 128, 0))
PILE_REACH = 0.2  # garbage boxes this near (in their sizes) are one pile, for the rule and for its presence


class GarbageRule(RuleThresholds):
    """Exposed garbage: garbage or overflow that stays put in a watched zone and is not moving with a person."""

    min_dwell_s: float = Field(600, ge=0, title="Minimum dwell (s)")
    classes: tuple[str, ...] = Field(("garbage", "overflow"), title="Garbage classes")
    carrier_classes: tuple[str, ...] = Field(("person",), title="Carrier classes", description="Things that carry garbage (a bag in hand is not garbage)")
    carried_overlap: float = Field(0.5, gt=0, le=1, title="Carried overlap", description="Share of a garbage box inside a carrier box that counts as carried")
    severity_area: tuple[float, float] = Field((0.05, 0.15), title="Severity steps", description="Frame-area shares at which severity rises to 2 and 3")

    def used_classes(self) -> tuple[str, ...]:
        return self.evidence_classes() + self.carrier_classes


@rule(TYPE, thresholds=GarbageRule, zone_kinds=(GARBAGE_WATCH,), reach=PILE_REACH, title="Exposed garbage (暴露垃圾)")
def garbage(ctx: FrameContext) -> list[Violation]:
    """Each pile (touching garbage boxes grouped) that has stood for the dwell time and is not mostly inside a
    person's box (a bag in hand is not exposed garbage). Severity rises with the pile's share of the frame."""
    cfg = ctx.rules.rule(TYPE)
    if not cfg.enabled:
        return []
    d = ctx.detections
    carriers = d.xyxy[ctx.of_class(cfg.carrier_classes)]
    carried = box_overlap(d.xyxy, carriers).max(axis=1) >= cfg.carried_overlap if len(carriers) else np.zeros(len(d), dtype=bool)
    out = []
    for zone_id, inside, override in ctx.active_zones(GARBAGE_WATCH.name, TYPE):
        piles = np.where(ctx.evidence(cfg, cfg.classes, inside, override) & ~carried)[0].tolist()
        for group in clusters(d.xyxy[piles], reach=PILE_REACH):
            members = [piles[g] for g in group]
            share = float(ctx.area_share()[members].sum())
            severity = 1 + (share >= cfg.severity_area[0]) + (share >= cfg.severity_area[1])
            out.append(make_violation(ctx, TYPE, zone_id, members, severity))
    return out

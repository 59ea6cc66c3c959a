"""Street vending (占道经营 / 流动摊贩): a stall standing in a no_vending zone outside its allowed hours."""

from __future__ import annotations

import numpy as np

from .base import FrameContext, Violation, clusters, make_violation, rule

TYPE = "street_vending"


@rule(TYPE, reach=0.5)
def street_vending(ctx: FrameContext) -> list[Violation]:
    """A stall is a `stall`/`cart` detection on its own, or an umbrella/table/chair/bench with a stationary person
    within reach. Things of one stall are grouped into one violation."""
    cfg = ctx.rules.street_vending
    if not cfg.enabled:
        return []
    d = ctx.detections
    dwell = ctx.dwell_s()
    persons = np.where(ctx.of_class(cfg.person_classes) & (d.confidence >= cfg.min_score) & (dwell >= min(cfg.min_dwell_s, 60.0)))[0]
    out = []
    for zone_id, inside, override in ctx.active_zones("no_vending", TYPE):
        standalone = ctx.evidence(cfg, cfg.standalone_classes, inside, override)
        attended = ctx.evidence(cfg, cfg.attended_classes, inside, override)
        stall = np.where(standalone)[0].tolist()
        for i in np.where(attended)[0]:
            if _person_near(d.xyxy[i], d.xyxy[persons], cfg.person_reach):
                stall.append(int(i))
        if not stall:
            continue
        stall = sorted(stall)
        for group in clusters(d.xyxy[stall], reach=0.5):
            members = [stall[g] for g in group]
            out.append(make_violation(ctx, TYPE, zone_id, members, severity=1 if len(members) < 3 else 2))
    return out


def _person_near(box: np.ndarray, persons: np.ndarray, reach: float) -> bool:
    """Some person box lies within `reach` stall-sizes of the stall box (gap between the boxes, 0 if they touch)."""
    if len(persons) == 0:
        return False
    gap_x = np.maximum(0, np.maximum(persons[:, 0] - box[2], box[0] - persons[:, 2]))
    gap_y = np.maximum(0, np.maximum(persons[:, 1] - box[3], box[1] - persons[:, 3]))
    return bool((np.hypot(gap_x, gap_y) <= reach * max(box[2] - box[0], box[3] - box[1])).any())

"""Materials piled on the pavement (乱堆物料): something new that has stayed put in a no_vending zone, with
nobody coming by it and nothing of a stall in it, and that the detector does not explain (a parked car, parked
bikes, a person standing there). It is the static scene's evidence (`scene.background`) without the people and
goods that make a stall; its dwell is longer than a stall's, so a stall whose vendor is late is not taken for it.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from . import vending
from .base import FrameContext, Violation, make_violation, rule, thresholds
from .registry import STATIC_CLASS
from .thresholds import RuleThresholds
from .vending import NO_VENDING, explained_static, stall_things

TYPE = "materials_piled"


class MaterialsRule(RuleThresholds):
    """Materials piled on the pavement: unexplained static objects in a no_vending zone that are not a stall."""

    min_dwell_s: float = Field(1800, ge=0, title="Minimum dwell (s)", description="Longer than a stall's, so a stall still waiting for its first customer is not taken for a pile")
    min_score: float = Field(0.35, ge=0, le=1, title="Minimum score", description="Score at which a detection of an explaining class explains a static object")
    explained_by: tuple[str, ...] = Field(
        ("car", "bus", "truck", "bicycle", "motorcycle", "tricycle", "person", "garbage", "overflow", "garbage_bin"),
        title="Explaining classes",
        description="A static object mostly covered by these is that thing (a parked vehicle, a person, garbage: the garbage rule's), not materials",
    )
    explained_share: float = Field(0.6, gt=0, le=1, title="Explained share")

    def evidence_classes(self) -> tuple[str, ...]:
        return (STATIC_CLASS,)

    def used_classes(self) -> tuple[str, ...]:
        return self.explained_by


@rule(TYPE, thresholds=MaterialsRule, zone_kinds=(NO_VENDING,), title="Materials piled (乱堆物料)")
def materials_piled(ctx: FrameContext) -> list[Violation]:
    """One violation per unexplained static object that is no stall, settled for the dwell in a no_vending zone."""
    cfg = ctx.rules.rule(TYPE)
    if not cfg.enabled or ctx.patrol:
        return []
    if not ctx.of_class((STATIC_CLASS,)).any():
        return []
    out = []
    for zone_id, inside, override in ctx.active_zones(NO_VENDING.name, TYPE):
        stalls = stall_things(ctx, thresholds(ctx.rules.rule(vending.TYPE), override_for(ctx, zone_id)))
        t = thresholds(cfg, override)
        unexplained = explained_static(ctx, t.explained_by, t.explained_share, t.min_score) == 0
        for i in np.where(unexplained & ctx.settled(cfg, inside, override) & ~stalls)[0]:
            out.append(make_violation(ctx, TYPE, zone_id, [int(i)], severity=1 if ctx.area_share()[i] < 0.05 else 2))
    return out


def override_for(ctx: FrameContext, zone_id: str):
    """The street-vending override of zone `zone_id` (a stall is judged as the vending rule would there)."""
    zone = next((z for z in ctx.zones.zones if z.id == zone_id), None)
    return zone.config.overrides.get(vending.TYPE) if zone else None

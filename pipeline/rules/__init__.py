"""Rules: one small module per violation type, each registering `@rule(TYPE, thresholds=..., zone_kinds=...)`
on `rule(ctx) -> list[Violation]`.

Which classes feed which rule is configuration (`RulesConfig.classes_for`), so a retrained model with new
classes (`stall`, `cart`, ...) feeds the rules without a code change. A new violation type is one entry in
`domain.VIOLATION_TYPES` and one module here: every module in this package is imported, so its rule registers
in `registry`, and `pipeline.config` (which imports this package) composes its `rules:` section and zone kinds
from there.
"""

import importlib
import pkgutil

from .base import PATROL_ZONE, FrameContext, Violation, rule
from .parking import OUTSIDE_BAYS
from .presence import present
from .registry import RULES, STATIC_CLASS, RuleSpec, ZoneKindSpec, outside_zone_ids, zone_kind, zone_kinds
from .thresholds import RuleOverride, RuleThresholds

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")


def evaluate(ctx: FrameContext) -> list[Violation]:
    """Every rule's violations on one frame, in the order the types are declared."""
    return [v for t in ctx.rules.types() if t in RULES for v in RULES[t].find(ctx)]


__all__ = [
    "OUTSIDE_BAYS", "PATROL_ZONE", "RULES", "STATIC_CLASS", "FrameContext", "RuleOverride", "RuleSpec", "RuleThresholds", "Violation", "ZoneKindSpec",
    "evaluate", "outside_zone_ids", "present", "rule", "zone_kind", "zone_kinds",
]

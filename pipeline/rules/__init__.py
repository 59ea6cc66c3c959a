"""Rules: one small module per violation type, each registering `@rule(TYPE)` on `rule(ctx) -> list[Violation]`.

Which classes feed which rule is configuration (`RulesConfig.classes_for`), so a retrained model with new
classes (`stall`, `cart`, ...) feeds the rules without a code change. A new violation type is one entry in
`domain.VIOLATION_TYPES` and one module here: every module in this package is imported, so its rule registers.
"""

import importlib
import pkgutil

from .base import PATROL_ZONE, RULES, FrameContext, RuleSpec, Violation, rule
from .parking import OUTSIDE_BAYS
from .presence import present

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")


def evaluate(ctx: FrameContext) -> list[Violation]:
    """Every rule's violations on one frame, in the order the types are declared."""
    return [v for t in ctx.rules.types() if t in RULES for v in RULES[t].find(ctx)]


__all__ = ["OUTSIDE_BAYS", "PATROL_ZONE", "RULES", "FrameContext", "RuleSpec", "Violation", "evaluate", "present", "rule"]

"""Rules: one small function per violation type, `rule(ctx: FrameContext) -> list[Violation]`.

Which classes feed which rule is configuration (`RulesConfig`), so a retrained model with new classes
(`stall`, `cart`, ...) feeds the rules without a code change.
"""

from .base import PATROL_ZONE, FrameContext, Violation
from .garbage import garbage
from .parking import OUTSIDE_BAYS, non_motor_parking
from .presence import present
from .vending import street_vending

RULES = (street_vending, non_motor_parking, garbage)


def evaluate(ctx: FrameContext) -> list[Violation]:
    return [v for rule in RULES for v in rule(ctx)]


__all__ = ["OUTSIDE_BAYS", "PATROL_ZONE", "RULES", "FrameContext", "Violation", "evaluate", "garbage", "non_motor_parking", "present", "street_vending"]

"""What is physically present for each violation type in a frame, with no dwell, count or schedule applied.

Auto-verification asks "is the problem still at this spot?", which is a weaker question than "is this a
violation now?": a stall whose vendor stepped away, or a pile a passer-by stands in front of, is still there.
Each rule says what its presence is (`rule(..., presence=...)`); by default, groups of its evidence classes.
"""

from __future__ import annotations

from .base import Box, FrameContext
from .registry import RULES


def present(ctx: FrameContext) -> list[tuple[str, Box]]:
    """(violation type, box) for every stall, pile and group of parked vehicles in view."""
    return [(t, box) for t in ctx.rules.types() if t in RULES for box in RULES[t].present(ctx)]

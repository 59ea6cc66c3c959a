"""The one registry of rules and zone kinds: what everything outside the rule modules reads about them.

Each rule module declares, with `@rule(...)` (`rules.base`), its violation type, its thresholds model and the
zone kinds its rule reads, each with the flags other stages act on: the change gate watches the whole frame for a
kind whose rule looks outside its zones, a camera runs the cue model for a kind whose rule reads cue classes and
keeps a static scene for one whose rule reads static objects, evidence outlines each kind in its colour. The
rule modules register when `pipeline.rules` is imported, and `pipeline.config` imports it to compose its `rules:`
section and its zone kinds, so `config check`, `config schema` and the engine see the same rules.

A violation type's label and deadline (what the ledger needs without the rules) stay in `domain.VIOLATION_TYPES`;
a rule may be registered only for a type declared there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..domain import VIOLATION_TYPES
from .thresholds import RuleThresholds

STATIC_CLASS = "static_object"  # the class name static objects (`scene.background`) carry among a frame's detections


@dataclass(frozen=True)
class ZoneKindSpec:
    """A kind of zone (the `kind:` of a zone in the YAML) and what its rules need from the other stages."""

    name: str
    colour: tuple[int, int, int]  # BGR outline of its zones on an evidence context image
    outside: str | None = None  # its rule also looks outside every zone of this kind; the zone id of that region
    cues: bool = False  # its rule reads cue classes: a camera with such a zone runs the cue model
    static: bool = False  # its rule reads static objects: a camera with such a zone keeps a static scene
    mask: bool = False  # no rule's: what stands inside is dropped before any rule sees it


# The one zone kind that belongs to no rule: a mask over what must never be looked at.
IGNORE = ZoneKindSpec("ignore", colour=(128, 128, 128), mask=True)


@dataclass(frozen=True)
class RuleSpec:
    """One violation type's rule: its thresholds model (its YAML section under `rules:`), the zone kinds it
    reads, the function that finds violations, and the one that says what is physically there (for
    auto-verification)."""

    type: str
    thresholds: type[RuleThresholds]
    zone_kinds: tuple[ZoneKindSpec, ...]
    find: Callable[[Any], list]  # FrameContext -> list[Violation]
    present: Callable[[Any], list]  # FrameContext -> list[Box]
    title: str = ""  # its section's title in `config schema`


RULES: dict[str, RuleSpec] = {}


def check_declared(type_: str) -> None:
    if type_ not in VIOLATION_TYPES:
        raise ValueError(f"rule for undeclared violation type '{type_}': add it to domain.VIOLATION_TYPES first")


def register(spec: RuleSpec) -> RuleSpec:
    """Add a rule; its type must be declared in `domain.VIOLATION_TYPES`, and a zone kind another rule reads too
    must be declared alike."""
    check_declared(spec.type)
    known = zone_kinds()
    for kind in spec.zone_kinds:
        if kind.name in known and known[kind.name] != kind:
            raise ValueError(f"zone kind '{kind.name}' is already declared differently: {known[kind.name]}")
    RULES[spec.type] = spec
    return spec


_kinds_cache: tuple[tuple, dict[str, ZoneKindSpec]] | None = None


def zone_kinds() -> dict[str, ZoneKindSpec]:
    """Every zone kind by name: the rules' kinds in the order of their types (`domain.VIOLATION_TYPES`), then
    `ignore`."""
    global _kinds_cache
    key = tuple((t, RULES[t].zone_kinds) for t in VIOLATION_TYPES if t in RULES)
    if _kinds_cache is None or _kinds_cache[0] != key:
        kinds: dict[str, ZoneKindSpec] = {}
        for _, declared in key:
            for kind in declared:
                kinds.setdefault(kind.name, kind)
        kinds[IGNORE.name] = IGNORE
        _kinds_cache = (key, kinds)
    return _kinds_cache[1]


def zone_kind(name: str) -> ZoneKindSpec:
    """The kind named `name` (a zone's `kind`, validated against `zone_kinds()` by the config)."""
    try:
        return zone_kinds()[name]
    except KeyError:
        raise KeyError(f"unknown zone kind '{name}' (declared: {', '.join(zone_kinds())})") from None


def outside_zone_ids() -> frozenset[str]:
    """Zone ids of the regions outside every zone of a kind (`outside_bays`): each such region is one spot."""
    return frozenset(k.outside for k in zone_kinds().values() if k.outside)


def kind_names(kinds) -> str:
    """'a, b or c': zone kind names as a sentence reads them."""
    names = [k.name for k in kinds]
    return " or ".join([", ".join(names[:-1]), names[-1]]) if len(names) > 1 else "".join(names)

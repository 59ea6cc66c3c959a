"""What every rule sees (one frame, its tracked detections, the camera's zones) and what it returns.

This package imports neither `config` nor `scene`: the config is composed from the rules' declarations
(`registry`), so the rules read the `rules:` section and a camera's zones through the small protocols below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ..domain import ViolationType
from ..geometry import union_box
from .registry import RuleSpec, ZoneKindSpec, check_declared, register
from .thresholds import RuleOverride, RuleThresholds

if TYPE_CHECKING:
    import supervision as sv

PATROL_ZONE = "photo"  # patrol photos have no zones: the whole photo is one


@dataclass(frozen=True)
class Violation:
    """One rule's finding on one frame: the evidence behind it and where."""

    type: ViolationType
    zone_id: str
    box: tuple[float, float, float, float]
    count: int
    score: float
    severity: int
    since: datetime  # when the evidence settled (the earliest of its members)
    members: tuple[int, ...]  # indices into the frame's detections


class RulesSection(Protocol):
    """The `rules:` section as a rule reads it (`config.RulesConfig`)."""

    def rule(self, type_: ViolationType) -> RuleThresholds: ...

    def types(self) -> tuple[str, ...]: ...


class ZoneLike(Protocol):
    """One zone placed on the frame (`scene.zones.Zone`)."""

    id: str
    config: object  # its `config.ZoneConfig` (a rule reads its `overrides`)

    def active(self, at_local: datetime) -> bool: ...

    def contains(self, detections: sv.Detections) -> np.ndarray: ...


class CameraZonesLike(Protocol):
    """A camera's zones on the frame (`scene.zones.CameraZones`)."""

    zones: list[ZoneLike]

    def of_kind(self, kind: str) -> list[ZoneLike]: ...


@dataclass
class FrameContext:
    """One frame as the rules see it.

    `detections` carry `class_name`, `tracker_id` and `still_since`. For a patrol photo `zones` is None: there is
    no dwell (a photo is one moment) and the photo is a single zone.
    """

    at: datetime  # frame time, local to the camera (schedules are local)
    width: int
    height: int
    detections: sv.Detections
    rules: RulesSection
    zones: CameraZonesLike | None = None
    _names: np.ndarray = field(init=False, repr=False)
    _memo: dict = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._names = self.detections.data.get("class_name", np.array([], dtype=object)).astype(str)

    def memo(self, key, compute: Callable[[], object]):
        """`compute()` once per frame for `key`: what several rules (and presence) read, such as which
        detections make a stall, is worked out once."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    @property
    def patrol(self) -> bool:
        return self.zones is None

    def of_class(self, classes) -> np.ndarray:
        wanted = set(classes)  # a set lookup per detection: np.isin's sorting costs more on a frame's handful of boxes
        return np.fromiter((n in wanted for n in self._names), dtype=bool, count=len(self._names))

    def dwell_s(self) -> np.ndarray:
        """Seconds each detection has stood still (infinite for a patrol photo); worked out once per frame."""
        return self.memo("dwell_s", self._dwell_s)

    def _dwell_s(self) -> np.ndarray:
        if self.patrol:
            return np.full(len(self.detections), np.inf)
        return np.array([(self.at - s).total_seconds() for s in self.detections.data["still_since"]], dtype=float)

    def since(self, members) -> datetime:
        if self.patrol:
            return self.at
        return min(self.detections.data["still_since"][list(members)])

    def area_share(self) -> np.ndarray:
        """Each detection's share of the frame's area; worked out once per frame."""
        return self.memo("area_share", self._area_share)

    def _area_share(self) -> np.ndarray:
        xyxy = self.detections.xyxy
        return (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1]) / float(self.width * self.height)

    def active_zones(self, kind: str, rule_type: str) -> list[tuple[str, np.ndarray, RuleOverride | None]]:
        """(zone id, detections inside, per-zone override) for the zones of `kind` whose schedule is not open now."""
        if self.patrol:
            return [(PATROL_ZONE, np.ones(len(self.detections), dtype=bool), None)]
        return [(z.id, z.contains(self.detections), z.config.overrides.get(rule_type)) for z in self.zones.of_kind(kind) if z.active(self.at)]

    def evidence(self, rule: RuleThresholds, classes, inside: np.ndarray, override: RuleOverride | None) -> np.ndarray:
        """Detections of `classes` inside the zone that pass the rule's score, area and dwell thresholds."""
        t = thresholds(rule, override)
        return self.of_class(classes) & (self.detections.confidence >= t.min_score) & self.settled(rule, inside, override)

    def settled(self, rule: RuleThresholds, inside: np.ndarray, override: RuleOverride | None) -> np.ndarray:
        """Detections inside the zone that pass the rule's area and dwell thresholds (any class, any score)."""
        t = thresholds(rule, override)
        return inside & (self.area_share() >= t.min_area) & (self.dwell_s() >= t.min_dwell_s)


def thresholds(rule: RuleThresholds, override: RuleOverride | None) -> RuleThresholds:
    """The rule's thresholds with a zone's override applied."""
    if override is None:
        return rule
    return rule.model_copy(update={k: v for k, v in override.model_dump().items() if v is not None})


def min_count(rule: RuleThresholds, override: RuleOverride | None) -> int:
    return thresholds(rule, override).min_count


def clusters(boxes: np.ndarray, reach: float | np.ndarray = 0.5) -> list[list[int]]:
    """Group boxes that touch once each is grown by `reach` of its own size (one stall, one pile); `reach` may be
    given per box."""
    n = len(boxes)
    reach = np.broadcast_to(np.asarray(reach, float), (n,))[:, None] if n else reach
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    size = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], axis=1) if n else np.zeros((0, 2))
    grown = np.concatenate([boxes[:, :2] - size * reach / 2, boxes[:, 2:] + size * reach / 2], axis=1) if n else boxes
    for i in range(n):
        for j in range(i + 1, n):
            if grown[i, 0] <= grown[j, 2] and grown[j, 0] <= grown[i, 2] and grown[i, 1] <= grown[j, 3] and grown[j, 1] <= grown[i, 3]:
                parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    return list(groups.values())


Box = tuple[float, float, float, float]
RuleFn = Callable[["FrameContext"], list[Violation]]
PresenceFn = Callable[["FrameContext"], list[Box]]


def rule(
    type_: ViolationType,
    *,
    thresholds: type[RuleThresholds],
    zone_kinds: tuple[ZoneKindSpec, ...] = (),
    presence: PresenceFn | None = None,
    reach: float = 0.5,
    title: str = "",
):
    """Register the decorated function as the rule of a type declared in `domain.VIOLATION_TYPES`.

    `thresholds` is the rule's thresholds model: its YAML section under `rules:` (titled `title`) is validated
    with it. `zone_kinds`: the kinds of zone the rule reads, with their flags (`registry.ZoneKindSpec`).
    `presence` defaults to groups of the rule's evidence classes at its score, boxes touching once grown by
    `reach` of their size (the grouping the rule itself uses).
    """

    check_declared(type_)

    def register_rule(find: RuleFn) -> RuleFn:
        present = presence or (lambda ctx: evidence_groups(ctx, type_, reach))
        register(RuleSpec(type_, thresholds, tuple(zone_kinds), find, present, title))
        return find

    return register_rule


def evidence_groups(ctx: FrameContext, type_: ViolationType, reach: float) -> list[Box]:
    """One box per group of the type's evidence classes at the rule's score, ignoring zones, dwell and count."""
    r = ctx.rules.rule(type_)
    idx = np.where(ctx.of_class(r.evidence_classes()) & (ctx.detections.confidence >= r.min_score))[0]
    return [union_box(ctx.detections.xyxy[idx[g]]) for g in clusters(ctx.detections.xyxy[idx], reach=reach)] if len(idx) else []


def make_violation(ctx: FrameContext, type_: ViolationType, zone_id: str, members: list[int], severity: int) -> Violation:
    d = ctx.detections
    return Violation(
        type=type_,
        zone_id=zone_id,
        box=union_box(d.xyxy[members]),
        count=len(members),
        score=float(d.confidence[members].max()),
        severity=severity,
        since=ctx.since(members),
        members=tuple(int(m) for m in members),
    )

"""Street vending (占道经营 / 流动摊贩): a stall standing in a no_vending zone outside its allowed hours.

No detector class covers what stalls are made of (canopies, glass carts, crates of produce), so a stall is any
of these, grouped into one violation per stall:
- a `stall`/`cart` detection (a model retrained on reviewers' boxes);
- an umbrella, table, chair or bench with a stationary person beside it;
- a market umbrella that stands: on a camera, still for the dwell (a walker's umbrella moves); on a patrol photo,
  with no person under it (a carried umbrella overlaps its carrier);
- goods on the pavement: a cluster of goods COCO knows (produce, bowls) or a retrained `goods` class, or goods
  under an umbrella or on a table; goods held by a person are theirs, not a stall's;
- on a camera, a static object (`scene.background`: new in the view, stayed put) that people came by or that
  goods or stall things lie in, unless the detector explains it as something else (a parked car, parked bikes,
  a person standing there).
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from ..geometry import box_overlap, covered_share, union_box
from .base import Box, FrameContext, Violation, clusters, make_violation, rule, thresholds
from .registry import STATIC_CLASS, ZoneKindSpec
from .thresholds import RuleThresholds

TYPE = "street_vending"
# Its stall things are cue classes (umbrella, table, chair, bench with a person), and static objects feed it.
NO_VENDING = ZoneKindSpec("no_vending", colour=(0, 165, 255), cues=True, static=True)
_STATIC_REACH = 0.35  # how far a static object reaches for the other parts of its stall, in its sizes


class VendingRule(RuleThresholds):
    """Street vending: stall-like things, stationary in a no_vending zone, outside its allowed hours. What makes a
    stall is read from here: stall classes, stall things with a vendor beside them, still market umbrellas,
    goods on the pavement, and (on cameras) static objects that people come by."""

    min_dwell_s: float = Field(600, ge=0, title="Minimum dwell (s)")
    standalone_classes: tuple[str, ...] = Field(("stall", "cart"), title="Stall classes", description="Classes that are a stall by themselves")
    attended_classes: tuple[str, ...] = Field(
        ("umbrella", "dining table", "chair", "bench"), title="Attended stall classes", description="Classes that are a stall only with a stationary person near them"
    )
    still_alone_classes: tuple[str, ...] = Field(
        ("umbrella",),
        title="Standing stall classes",
        description="Classes that are a stall by themselves when they stand: on a camera, still for the dwell (a walker's umbrella moves); on a photo, with no person under them (a carried umbrella overlaps its carrier)",
    )
    person_classes: tuple[str, ...] = Field(("person",), title="Vendor classes")
    person_reach: float = Field(1.0, gt=0, title="Person reach", description="How near a person must be: the gap between the boxes, in sizes of the stall box")
    goods_classes: tuple[str, ...] = Field(
        ("banana", "apple", "orange", "broccoli", "carrot", "bowl", "goods"),
        title="Goods classes",
        description="Things for sale the detector knows (COCO's produce and bowls, or a retrained `goods` class); one held by a person is theirs. "
        "Potted plants (a row of pots on a kerb), bottles and cups (litter on a ledge) and cases (bins) set off false stalls on real streets",
    )
    goods_score: float = Field(0.25, ge=0, le=1, title="Goods score", description="Score a goods detection needs (small wares score lower than people)")
    min_goods: int = Field(3, ge=1, title="Goods in a cluster", description="Goods lying together that make a stall by themselves (a person is then optional)")
    goods_holder_classes: tuple[str, ...] = Field(
        ("umbrella", "dining table"), title="Goods holders", description="Any goods under one of these (a canopy) or on it (a table) make a stall with it"
    )
    static_objects: bool = Field(True, title="Static objects", description="On cameras: something new that stays put is a stall when people come by it or stall cues lie in it")
    min_visitors: int = Field(1, ge=1, title="Visitors", description="People (tracks) seen beside a static object that make it a stall")
    explained_by: tuple[str, ...] = Field(
        ("car", "bus", "truck", "bicycle", "motorcycle", "tricycle", "person"),
        title="Explaining classes",
        description="A static object mostly covered by these is that thing (a parked car, parked bikes, a person standing), not a stall",
    )
    explained_share: float = Field(0.6, gt=0, le=1, title="Explained share", description="Share of a static object the explaining classes must cover")

    def evidence_classes(self) -> tuple[str, ...]:
        static = (STATIC_CLASS,) if self.static_objects else ()  # a fixture suppresses static objects too
        return tuple(dict.fromkeys(self.standalone_classes + self.attended_classes + self.still_alone_classes + self.goods_classes + static))

    def used_classes(self) -> tuple[str, ...]:
        """Detector classes only: static objects come from the scene, not from a model."""
        detected = (c for c in self.evidence_classes() if c != STATIC_CLASS)
        return tuple(dict.fromkeys((*detected, *self.person_classes, *self.explained_by)))


def stall_things(ctx: FrameContext, cfg: VendingRule) -> np.ndarray:
    """Per detection: is it part of a stall, by itself or with what stands beside it (no zone, no dwell)?
    `cfg`: the rule's thresholds (with a zone's override applied). Worked out once per frame and thresholds."""
    return ctx.memo(("stall_things", cfg), lambda: _stall_things(ctx, cfg)).copy()


def _stall_things(ctx: FrameContext, cfg: VendingRule) -> np.ndarray:
    d = ctx.detections
    scored = d.confidence >= cfg.min_score
    dwell = ctx.dwell_s()
    persons = ctx.of_class(cfg.person_classes) & scored
    vendors = np.where(persons & (dwell >= min(cfg.min_dwell_s, 60.0)))[0]
    stall = ctx.of_class(cfg.standalone_classes) & scored
    for i in np.where(ctx.of_class(cfg.attended_classes) & scored)[0]:
        if _person_near(d.xyxy[i], d.xyxy[vendors], cfg.person_reach):
            stall[i] = True
    standing = ctx.of_class(cfg.still_alone_classes) & scored
    if not ctx.patrol:
        stall |= standing & (dwell >= cfg.min_dwell_s)
    elif standing.any():  # a photo has no dwell: an umbrella stands when no person is under it
        idx = np.where(standing)[0]
        carried = box_overlap(d.xyxy[idx], d.xyxy[persons]).max(axis=1) > 0 if persons.any() else np.zeros(len(idx), bool)
        stall[idx[~carried]] = True
    goods = _loose_goods(ctx, cfg, persons)
    stall |= _goods_stalls(ctx, cfg, goods)
    if cfg.static_objects and not ctx.patrol:
        cues = goods | (ctx.of_class(cfg.standalone_classes + cfg.attended_classes + cfg.still_alone_classes) & scored)
        stall |= _static_stalls(ctx, cfg, cues)
    return stall


def _loose_goods(ctx: FrameContext, cfg: VendingRule, persons: np.ndarray) -> np.ndarray:
    """Goods at their score that no person holds (a handbag or a cup inside a person's box is theirs)."""
    d = ctx.detections
    goods = ctx.of_class(cfg.goods_classes) & (d.confidence >= cfg.goods_score)
    if goods.any() and persons.any():
        idx = np.where(goods)[0]
        goods[idx[box_overlap(d.xyxy[idx], d.xyxy[persons]).max(axis=1) >= 0.8]] = False
    return goods


def _goods_stalls(ctx: FrameContext, cfg: VendingRule, goods: np.ndarray) -> np.ndarray:
    """Goods that make a stall: `min_goods` of them in one cluster, or any under an umbrella or on a table
    (which then belongs to the stall too)."""
    d = ctx.detections
    out = np.zeros(len(d), bool)
    idx = np.where(goods)[0]
    if not len(idx):
        return out
    for group in clusters(d.xyxy[idx], reach=1.0):
        if len(group) >= cfg.min_goods:
            out[idx[group]] = True
    for h in np.where(ctx.of_class(cfg.goods_holder_classes) & (d.confidence >= cfg.min_score))[0]:
        x1, y1, x2, y2 = d.xyxy[h]
        below = np.array([[x1, y1, x2, y2 + 2.0 * (y2 - y1)]])  # under a canopy, on and around a table
        held = idx[box_overlap(d.xyxy[idx], below)[:, 0] >= 0.5]
        if len(held):
            out[held] = True
            out[h] = True
    return out


def _static_stalls(ctx: FrameContext, cfg: VendingRule, cues: np.ndarray, visited: bool = True) -> np.ndarray:
    """Static objects that are stalls: people came by them (`min_visitors`; any, with `visited` False) or stall
    cues lie in them, and the detector does not explain them as something else (`explained_by`)."""
    d = ctx.detections
    out = np.zeros(len(d), bool)
    unexplained = np.where(explained_static(ctx, cfg.explained_by, cfg.explained_share, cfg.min_score) == 0)[0]
    for i in unexplained:
        box = d.xyxy[i]
        came_by = not visited or len(d.data["static"][i].visitors) >= cfg.min_visitors
        holds = cues.any() and bool((box_overlap(d.xyxy[cues], box[None])[:, 0] >= 0.5).any())
        out[i] = came_by or holds
    return out


def explained_static(ctx: FrameContext, by: tuple[str, ...], share: float, score: float) -> np.ndarray:
    """Per detection: 1 for a static object the detector explains (`share` of it covered by boxes of classes
    `by` at `score` now, or in most of the frames it was seen in), 0 for one it does not, -1 for anything else.
    Once per frame and settings."""

    def compute() -> np.ndarray:
        d = ctx.detections
        out = np.full(len(d), -1, np.int8)
        static = np.where(ctx.of_class((STATIC_CLASS,)))[0]
        if len(static):
            explaining = d.xyxy[ctx.of_class(by) & (d.confidence >= score)]
            out[static] = [covered_share(d.xyxy[i], explaining) >= share or d.data["static"][i].covered_ratio(by) >= 0.5 for i in static]
        return out

    return ctx.memo(("explained_static", by, share, score), compute)


def stalls(ctx: FrameContext) -> list[Box]:
    """Presence for auto-verification: one box per stall in view, whatever the zone, dwell or hour, with or
    without its vendor (a stall whose vendor stepped away is still there)."""
    cfg = ctx.rules.rule(TYPE)
    things = ctx.of_class(cfg.standalone_classes + cfg.attended_classes + cfg.still_alone_classes) & (ctx.detections.confidence >= cfg.min_score)
    persons = ctx.of_class(cfg.person_classes) & (ctx.detections.confidence >= cfg.min_score)
    things |= _goods_stalls(ctx, cfg, _loose_goods(ctx, cfg, persons))
    if cfg.static_objects and not ctx.patrol:
        things |= _static_stalls(ctx, cfg, things, visited=False)
    idx = np.where(things)[0]
    return [union_box(ctx.detections.xyxy[idx[g]]) for g in clusters(ctx.detections.xyxy[idx], reach=0.5)] if len(idx) else []


@rule(TYPE, thresholds=VendingRule, zone_kinds=(NO_VENDING,), presence=stalls, title="Street vending (占道经营)")
def street_vending(ctx: FrameContext) -> list[Violation]:
    """One violation per stall in each no_vending zone: its things, settled for the dwell, grouped when they
    touch. Severity 2 from three things on."""
    rule_cfg = ctx.rules.rule(TYPE)
    if not rule_cfg.enabled:
        return []
    out = []
    for zone_id, inside, override in ctx.active_zones(NO_VENDING.name, TYPE):
        cfg = thresholds(rule_cfg, override)
        stall = np.where(stall_things(ctx, cfg) & ctx.settled(rule_cfg, inside, override))[0].tolist()
        for members in _stalls(ctx, stall):
            out.append(make_violation(ctx, TYPE, zone_id, members, severity=1 if len(members) < 3 else 2))
    return out


def _stalls(ctx: FrameContext, things: list[int]) -> list[list[int]]:
    """Stall things grouped into stalls: things that touch once grown by half their size. A static object is a
    stall's own outline, grown by a third of its size only: the parts of one stall (a chair, an umbrella over the
    vendor) lie closer than that, two stalls set up side by side further apart."""
    d = ctx.detections
    reach = np.array([_STATIC_REACH if d.data["class_name"][i] == STATIC_CLASS else 0.5 for i in things])
    return [[things[g] for g in group] for group in clusters(d.xyxy[things], reach=reach)] if things else []


def _person_near(box: np.ndarray, persons: np.ndarray, reach: float) -> bool:
    """Some person box lies within `reach` stall-sizes of the stall box (gap between the boxes, 0 if they touch)."""
    if len(persons) == 0:
        return False
    gap_x = np.maximum(0, np.maximum(persons[:, 0] - box[2], box[0] - persons[:, 2]))
    gap_y = np.maximum(0, np.maximum(persons[:, 1] - box[3], box[1] - persons[:, 3]))
    return bool((np.hypot(gap_x, gap_y) <= reach * max(box[2] - box[0], box[3] - box[1])).any())

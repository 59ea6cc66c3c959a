"""Sliced inference: a model over overlapping tiles at its native resolution plus the full frame, merged.

Why: a street camera frame is letterboxed down to the model's size (416 px street model, 640 px cue model),
so a bike 40 px tall in a 1920 px frame shrinks to a few pixels, and in a heap of parked bikes, overlapping and
each one small, the model finds about half of them; the parking rule's `min_count` then rarely fires on a real
heap. Three choices make the tiles pay:
- native resolution: no tile is larger than the model's input (`max_tile`, the model's `imgsz`), so a tile is
  never shrunk; the grid grows beyond `tiles` until that holds (a small zone's tiles are upscaled instead);
- one model per `SlicedDetector`: a cascade is sliced model by model (`plan.sliced_detector`), each at its own
  input size, so the cue model, which owns bicycle and motorcycle, sees the tiles too;
- a merge that keeps precision: a tile's boxes cut by a tile edge (not the frame's) are dropped, then the full
  frame and the tiles are merged by `merge` ('nms', 'nmm': supervision's non-maximum merge, or 'wbf': weighted
  box fusion), classes in one `groups` entry merged as one (a bike seen as bicycle in one view and as
  motorcycle in another is one bike). Measured choice: docs/benchmarks.md, "Slicing".
The two-wheelers' operating point (`group_floor`, `group_score`, `group_min_score`): inside a sliced region a
group's boxes enter the merge from a lower score (0.15) and a merged box is scored by the evidence of all its
views, the sum of its members' scores, kept at 0.35. A bike the full frame and two tiles each see at 0.2 is a
bike; one weak box in one view is not. Measured against the best single threshold on the heap photos and the
streets-in holdout, at 640 and 1024 px (docs/benchmarks.md, "Slicing").
Cost: 1 + tiles detector images per region per frame, per sliced model.

>>> det = SlicedDetector(load_detector(), SliceSettings(tiles=(2, 2), overlap=0.2))
>>> [d] = det.detect([frame])                     # tiles cover the whole frame
>>> det = SlicedDetector(base, regions=[(800, 500, 1900, 1080)])   # tiles cover one zone's box only
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import supervision as sv

from .base import Detector, make_detections, warm

Box = tuple[float, float, float, float]
MIN_TILE_PX = 32  # a region whose tiles would be smaller than this is not sliced (the full frame covers it)
MAX_GRID = 12  # columns or rows a region may grow to so that its tiles fit the model's input
EDGE_SHARE, EDGE_PX = 0.01, 2.0  # a tile box this close to a side where the tile cuts the frame is a cut object
MERGES = ("nms", "nmm", "wbf")
GROUP_SCORES = ("max", "sum")
TWO_WHEELERS = ("bicycle", "motorcycle")


@dataclass(frozen=True)
class SliceSettings:
    """How a region is cut and merged: `tiles` (columns, rows: the least grid; more where a tile would exceed the
    model's input), the share of a tile that overlaps its neighbour, the IoU at which boxes from tiles and the
    full frame are one object, the merge, whether boxes cut by a tile edge are dropped, and class groups merged
    as one class.

    The `groups` classes (the two-wheelers) inside a sliced region have their own operating point: each view's
    boxes from `group_floor` (None: the model's own score floor; lower only where the model can be re-thresholded,
    `with_settings`: every backend), a merged box scored `group_score` ('max': its best member; 'sum': its members' scores added,
    at most 1, so views that agree add up; 'sum' needs the 'wbf' merge) and kept at `group_min_score` (None: the
    model's floor). Other classes, and two-wheelers outside every sliced region, keep the model's floor and the
    best member's score; so does a merged two-wheeler no tile holds whole (only the full frame could see it: it is
    kept at the model's floor). `group_score='max', group_floor=None, group_min_score=None` is the merge as it was."""

    tiles: tuple[int, int] = (2, 2)
    overlap: float = 0.2
    iou: float = 0.5
    merge: str = "wbf"  # measured best of the three on the heap photos (docs/benchmarks.md, "Slicing")
    drop_cut: bool = True
    groups: tuple[tuple[str, ...], ...] = (TWO_WHEELERS,)
    # the two-wheelers' operating point, chosen from the recall/precision curves (docs/benchmarks.md, "Slicing"):
    # above the parking rule's min_score (0.3), so every bike a tile could see that `detect --slice` shows is counted
    group_score: str = "sum"
    group_floor: float | None = 0.15
    group_min_score: float | None = 0.35

    def __post_init__(self) -> None:
        if len(self.tiles) != 2 or any(not isinstance(n, int) or n < 1 for n in self.tiles):
            raise ValueError(f"tiles must be two whole numbers >= 1 (columns, rows), got {self.tiles}")
        if not 0.0 <= self.overlap < 1.0:
            raise ValueError(f"overlap must be in [0, 1), got {self.overlap}")
        if not 0.0 < self.iou <= 1.0:
            raise ValueError(f"iou must be in (0, 1], got {self.iou}")
        if self.merge not in MERGES:
            raise ValueError(f"merge must be one of {', '.join(MERGES)}, got '{self.merge}'")
        if self.group_score not in GROUP_SCORES:
            raise ValueError(f"group_score must be one of {', '.join(GROUP_SCORES)}, got '{self.group_score}'")
        if self.group_score == "sum" and self.merge != "wbf":
            raise ValueError(f"group_score 'sum' adds up the members of a weighted-box-fusion cluster: it needs merge 'wbf', got '{self.merge}'")
        for name in ("group_floor", "group_min_score"):
            v = getattr(self, name)
            if v is not None and not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1] or None, got {v}")

    @property
    def group_classes(self) -> frozenset[str]:
        return frozenset(n for g in self.groups for n in g)

    def grid(self, width: int, height: int, max_tile: int | None = None) -> tuple[tuple[int, int], tuple[int, int]]:
        """(columns, rows) and tile (width, height) for a region of `width` x `height`: at least `tiles`, and more
        until a tile is no larger than `max_tile` (None: no limit), neighbours sharing at least `overlap`."""

        def axis(size: int, n: int) -> tuple[int, int]:
            while True:
                tile = size if n == 1 else min(size, math.ceil(size / (n - (n - 1) * self.overlap)))
                if max_tile is None or tile <= max_tile or n >= MAX_GRID:
                    return n, tile
                n += 1

        (cols, tw), (rows, th) = axis(width, self.tiles[0]), axis(height, self.tiles[1])
        return (cols, rows), (tw, th)


def tile_boxes(region: tuple[int, int, int, int], settings: SliceSettings, max_tile: int | None = None) -> list[tuple[int, int, int, int]]:
    """The tiles of `region` (frame pixels, x1 y1 x2 y2), row by row: evenly spaced, the first and last flush
    with the region's sides, so they cover it exactly."""
    x1, y1, x2, y2 = region
    (cols, rows), (tw, th) = settings.grid(x2 - x1, y2 - y1, max_tile)

    def starts(lo: int, size: int, tile: int, n: int) -> list[int]:
        return [lo] if n == 1 else [lo + round(i * (size - tile) / (n - 1)) for i in range(n)]

    return [(x, y, x + tw, y + th) for y in starts(y1, y2 - y1, th, rows) for x in starts(x1, x2 - x1, tw, cols)]


@dataclass(frozen=True)
class SliceRegion:
    """A box in frame pixels whose tiles are run, with its own settings (None: the detector's: its grid, overlap
    and `drop_cut`; the merge of all regions is the detector's) and the classes wanted there (None: all;
    `plan.sliced_detector` gives its tiles only to the models that own one)."""

    box: Box
    settings: SliceSettings | None = None
    classes: frozenset[str] | None = None


class SlicedDetector:
    """Any `Detector`, run on the full frame and on overlapping tiles of each region, merged per image.

    `regions`: boxes (or `SliceRegion`s) in frame pixels, clipped to each frame; None tiles the whole frame.
    `max_tile`: the largest tile side, default the base's `imgsz` (its input); tiles are never shrunk.
    Detections keep `data['class_name']`; boxes are in the frame's pixels, best score first.
    """

    def __init__(
        self, base: Detector, settings: SliceSettings | None = None, regions: Sequence[Box | SliceRegion] | None = None, max_tile: int | None = None,
    ) -> None:
        self.base = base
        self.settings = settings or SliceSettings()
        self.names: tuple[str, ...] = tuple(base.names)
        self.max_tile = max_tile if max_tile is not None else getattr(base, "imgsz", None)
        if self.max_tile is not None and self.max_tile < MIN_TILE_PX:
            raise ValueError(f"max_tile must be at least {MIN_TILE_PX} px, got {self.max_tile}")
        self.regions: tuple[SliceRegion, ...] | None = None
        if regions is not None:
            self.regions = tuple(r if isinstance(r, SliceRegion) else SliceRegion(tuple(float(v) for v in r)) for r in regions)
            for r in self.regions:
                x1, y1, x2, y2 = r.box
                if not (x2 > x1 and y2 > y1):
                    raise ValueError(f"slicing region {r.box} must have x2 > x1 and y2 > y1")
        self.backend = f"{getattr(base, 'backend', '?')}+sliced"
        self._plans: dict[tuple[int, int], list] = {}
        # the model's own score floor, and the model as run: at the group floor where that is lower and the model
        # owns a group class (its other classes are cut back to the floor before the merge)
        model_settings = getattr(base, "settings", None)
        self.conf: float | None = getattr(model_settings, "conf", None)
        self._grouped = self.settings.group_classes & set(self.names)
        self._run = base
        floor = self.settings.group_floor
        if floor is not None and self.conf is not None and floor < self.conf and self._grouped and hasattr(base, "with_settings"):
            from dataclasses import replace

            self._run = base.with_settings(replace(model_settings, conf=floor))

    def __repr__(self) -> str:
        where = "whole frame" if self.regions is None else f"{len(self.regions)} region(s)"
        return f"SlicedDetector({self.settings.tiles[0]}x{self.settings.tiles[1]}+, tile <= {self.max_tile} px, {self.settings.merge}, {where})"

    @property
    def imgsz(self) -> int | None:
        return getattr(self.base, "imgsz", None)

    def detect(self, images: Sequence[np.ndarray]) -> list[sv.Detections]:
        if not len(images):
            return []
        full = self._run.detect(images)
        return [self._merge(f, self._tiled(im), im.shape[1], im.shape[0]) for f, im in zip(full, images)]

    def warm(self, sizes: Sequence[tuple[int, int]]) -> None:
        """The model's per-shape builds (`base.warm`) for these frames and for each of their tiles."""
        tiles = {(y2 - y1, x2 - x1) for height, width in sizes for _, boxes, _ in self._plan(width, height) for x1, y1, x2, y2 in boxes}
        warm(self._run, [*sizes, *sorted(tiles)])

    def tiles(self, width: int, height: int) -> list[Box]:
        """The tiles (frame pixels) a frame of this size is cut into; for inspection, tests and cost."""
        return [tuple(float(v) for v in t) for (_, tiles, _) in self._plan(width, height) for t in tiles]

    # -- internals ---------------------------------------------------------------------------------------

    def _regions(self, width: int, height: int) -> list[tuple[tuple[int, int, int, int], SliceSettings]]:
        if self.regions is None:
            return [((0, 0, width, height), self.settings)]
        out = []
        for r in self.regions:
            x1, y1 = max(0, math.floor(r.box[0])), max(0, math.floor(r.box[1]))
            x2, y2 = min(width, math.ceil(r.box[2])), min(height, math.ceil(r.box[3]))
            if x2 - x1 >= MIN_TILE_PX and y2 - y1 >= MIN_TILE_PX:
                out.append(((x1, y1, x2, y2), r.settings or self.settings))
        return out

    def _plan(self, width: int, height: int) -> list[tuple[tuple[int, int, int, int], list[tuple[int, int, int, int]], list[tuple[bool, ...]]]]:
        """Per region: its box, its tiles in frame pixels, and which sides of each tile cut the frame (not the
        frame's own border: boxes there are cut objects; none where the region's settings keep cut boxes). Made
        once per frame size."""
        plan = self._plans.get((width, height))
        if plan is None:
            if len(self._plans) >= 16:  # frames of many sizes (patrol photos): keep the cache small
                self._plans.clear()
            plan = []
            for region, s in self._regions(width, height):
                (cols, rows), (tw, th) = s.grid(region[2] - region[0], region[3] - region[1], self.max_tile)
                if cols * rows == 1 or min(tw, th) < MIN_TILE_PX:
                    continue
                tiles = tile_boxes(region, s, self.max_tile)
                cuts = [(t[0] > 0, t[1] > 0, t[2] < width, t[3] < height) if s.drop_cut else (False,) * 4 for t in tiles]
                plan.append((region, tiles, cuts))
            self._plans[(width, height)] = plan
        return plan

    def _tiled(self, image: np.ndarray) -> list[sv.Detections]:
        height, width = image.shape[:2]
        out = []
        for _, tiles, cuts in self._plan(width, height):
            dets = self._run.detect([image[y1:y2, x1:x2] for x1, y1, x2, y2 in tiles])  # one batched call per region
            for d, (x1, y1, x2, y2), sides in zip(dets, tiles, cuts):
                if not len(d):
                    continue
                d = d[~cut_by_edge(d.xyxy, x2 - x1, y2 - y1, sides)]
                if len(d):
                    d.xyxy = d.xyxy + np.array([x1, y1, x1, y1], dtype=d.xyxy.dtype)
                    out.append(d)
        return out

    def _merge(self, full: sv.Detections, tiled: list[sv.Detections], width: int, height: int) -> sv.Detections:
        """The views as one set of boxes: other classes merged as they always were; the group classes inside a
        sliced region at the group's operating point, those outside (the full frame's alone) as other classes."""
        parts = [d for d in (full, *tiled) if len(d)]
        if not parts:
            return full
        d = sv.Detections.merge(parts) if len(parts) > 1 else parts[0]
        s = self.settings
        grouped = np.isin(np.asarray(d.data["class_name"], dtype=object), list(self._grouped)) if self._grouped else np.zeros(len(d), bool)
        inside = grouped & self._in_sliced(d.xyxy, width, height)
        floor = self.conf if self.conf is not None else 0.0
        plain = d[~inside & (d.confidence >= floor)]  # the model's own floor (the run may have been lower)
        out = [merge_detections(plain, self.names, s.merge, s.iou, s.groups)] if len(plain) else []
        if inside.any():
            g = merge_detections(d[inside], self.names, s.merge, s.iou, s.groups, s.group_score)
            keep = s.group_min_score if s.group_min_score is not None else floor
            # a box no tile holds whole (a large, near bike; one cut by the region's edge) has only the full frame
            # to see it, so no views to add up: it is judged as the full frame judges it
            out.append(g[(g.confidence >= keep) | (~self._in_a_tile(g.xyxy, width, height) & (g.confidence >= floor))])
        out = [o for o in out if len(o)]
        if not out:
            return full[:0]
        merged = sv.Detections.merge(out) if len(out) > 1 else out[0]
        return merged[np.argsort(-merged.confidence, kind="stable")]

    def _in_a_tile(self, xyxy: np.ndarray, width: int, height: int) -> np.ndarray:
        """Per box: does some tile hold it whole?"""
        whole = np.zeros(len(xyxy), dtype=bool)
        for _, tiles, _ in self._plan(width, height):
            for x1, y1, x2, y2 in tiles:
                whole |= (xyxy[:, 0] >= x1) & (xyxy[:, 1] >= y1) & (xyxy[:, 2] <= x2) & (xyxy[:, 3] <= y2)
        return whole

    def _in_sliced(self, xyxy: np.ndarray, width: int, height: int) -> np.ndarray:
        """Per box: does its centre lie in a region that has tiles on a frame of this size?"""
        cx, cy = (xyxy[:, 0] + xyxy[:, 2]) / 2, (xyxy[:, 1] + xyxy[:, 3]) / 2
        inside = np.zeros(len(xyxy), dtype=bool)
        for (x1, y1, x2, y2), _, _ in self._plan(width, height):
            inside |= (cx >= x1) & (cx <= x2) & (cy >= y1) & (cy <= y2)
        return inside


def cut_by_edge(xyxy: np.ndarray, w: int, h: int, sides: tuple[bool, ...]) -> np.ndarray:
    """Per box (tile pixels): does it touch a side of the tile that cuts through the frame?

    A tile edge through an object yields a box of its visible part; it would survive the merge next to the whole
    object's box (their IoU is low) and count as a second object. The object is whole in the neighbouring tile
    (the overlap) or in the full frame. Measured on garbage-cn val (2x2, street-v1): street-class precision 0.42
    with these boxes kept, 0.78 without; recall 0.87 and 0.85 (full frame alone: 0.81, 0.79)."""
    left, top, right, bottom = sides
    mx, my = max(EDGE_PX, EDGE_SHARE * w), max(EDGE_PX, EDGE_SHARE * h)
    return (left & (xyxy[:, 0] <= mx)) | (top & (xyxy[:, 1] <= my)) | (right & (xyxy[:, 2] >= w - mx)) | (bottom & (xyxy[:, 3] >= h - my))


def merge_detections(
    d: sv.Detections, names: Sequence[str], method: str = "nms", iou: float = 0.5, groups: Sequence[Sequence[str]] = (), group_score: str = "max",
) -> sv.Detections:
    """One box per object from overlapping views: per class, or per group of classes (`groups`), boxes at IoU >=
    `iou` are one object. 'nms' keeps the best box; 'nmm' (supervision's non-maximum merge) the union box of the
    pair, scored as supervision merges (area-weighted mean); 'wbf' the score-weighted mean box of the cluster,
    scored as its best, or, for a cluster of a `groups` class with `group_score` 'sum', as the sum of its members'
    scores (at most 1). The class is the best box's. Best score first."""
    if method not in MERGES:
        raise ValueError(f"merge must be one of {', '.join(MERGES)}, got '{method}'")
    if group_score not in GROUP_SCORES or (group_score == "sum" and method != "wbf"):
        raise ValueError(f"group_score must be 'max', or 'sum' with the 'wbf' merge; got '{group_score}' with '{method}'")
    if not len(d):
        return d
    class_name = np.asarray(d.data["class_name"], dtype=object)
    key = np.array([_group_key(str(n), groups) for n in class_name], dtype=object)
    _, ids = np.unique(key.astype(str), return_inverse=True)
    work = sv.Detections(xyxy=d.xyxy.astype(np.float32), confidence=d.confidence.astype(np.float32), class_id=ids.astype(int), data={"class_name": class_name})
    if method == "nms":
        work = work.with_nms(threshold=iou, class_agnostic=False)
    elif method == "nmm":
        work = work.with_nmm(threshold=iou, class_agnostic=False)
    else:
        summed = {int(i) for i, k in zip(ids, key) if group_score == "sum" and any(k == "|".join(g) for g in groups)}
        work = _wbf(work, iou, summed)
    order = np.argsort(-work.confidence, kind="stable")
    work = work[order]
    return make_detections(work.xyxy, work.confidence, [names.index(str(n)) for n in work.data["class_name"]], names)


def _group_key(name: str, groups: Sequence[Sequence[str]]) -> str:
    for g in groups:
        if name in g:
            return "|".join(g)
    return name


def _wbf(d: sv.Detections, iou: float, summed: set[int] = frozenset()) -> sv.Detections:
    """Weighted box fusion (Solovyev et al.), one model: clusters built best score first, a box joining the
    cluster of the same class whose fused box it overlaps at IoU >= `iou`; the fused box is the score-weighted
    mean, its class the cluster's best, its score the best's, or for the class ids in `summed` the sum of the
    members' scores (at most 1): the views that agree on an object add up."""
    from ..geometry import box_iou

    order = np.argsort(-d.confidence, kind="stable")
    fused: list[np.ndarray] = []
    members: list[list[int]] = []
    for i in order:
        same = [k for k in range(len(fused)) if d.class_id[members[k][0]] == d.class_id[i]]
        if same:
            ious = box_iou(d.xyxy[i : i + 1], np.array([fused[k] for k in same]))[0]
            best = int(np.argmax(ious))
            if ious[best] >= iou:
                k = same[best]
                members[k].append(i)
                w = d.confidence[members[k]]
                fused[k] = (d.xyxy[members[k]] * w[:, None]).sum(0) / w.sum()
                continue
        fused.append(d.xyxy[i].copy())
        members.append([i])
    keep = [m[0] for m in members]  # the best box of each cluster: its score, class and data
    out = d[np.array(keep, dtype=int)]
    out.xyxy = np.array(fused, dtype=np.float32).reshape(-1, 4)
    if summed:
        out.confidence = np.array([min(1.0, float(d.confidence[m].sum())) if int(d.class_id[m[0]]) in summed else float(d.confidence[m[0]]) for m in members], dtype=np.float32)
    return out

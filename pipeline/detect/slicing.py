"""Sliced inference: the detector over overlapping tiles plus the full frame, merged by NMS.

Why: a street camera frame is letterboxed down to the model's size (320–640 px), so a bike 40 px tall in a
1920 px frame shrinks to a few pixels, and in a heap of parked bikes, overlapping and each one small, the
model finds about half of them; the parking rule's `min_count` then rarely fires on a real heap. Each tile
of a 2×2 grid is seen at about twice the resolution. The full frame still runs, for objects larger than a
tile or cut by a tile edge. Tiling is `supervision.InferenceSlicer` (tiles of one region batched into one
detector call, NMS across tiles); the merge with the full frame is `sv.Detections.merge` + `with_nms`. One
addition, measured to pay: a tile's boxes that touch a side where the tile cuts the frame are dropped (the
visible part of a cut object is otherwise a second, false object). Cost: 1 + cols×rows detector images per
region per frame.

>>> det = SlicedDetector(load_detector(), SliceSettings(tiles=(2, 2), overlap=0.2))
>>> [d] = det.detect([frame])                     # tiles cover the whole frame
>>> det = SlicedDetector(base, regions=[(800, 500, 1900, 1080)])   # tiles cover one zone's box only
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import supervision as sv

from .base import Detector, make_detections

Box = tuple[float, float, float, float]
MIN_TILE_PX = 32  # a region whose tiles would be smaller than this is not sliced (the full frame covers it)
EDGE_SHARE, EDGE_PX = 0.01, 2.0  # a tile box this close to a side where the tile cuts the frame is a cut object


@dataclass(frozen=True)
class SliceSettings:
    """How a region is cut: `tiles` (columns, rows), the share of a tile that overlaps its neighbour, and the
    IoU at which boxes from tiles and the full frame are one object (NMS, per class)."""

    tiles: tuple[int, int] = (2, 2)
    overlap: float = 0.2
    iou: float = 0.5

    def __post_init__(self) -> None:
        if len(self.tiles) != 2 or any(not isinstance(n, int) or n < 1 for n in self.tiles):
            raise ValueError(f"tiles must be two whole numbers >= 1 (columns, rows), got {self.tiles}")
        if not 0.0 <= self.overlap < 1.0:
            raise ValueError(f"overlap must be in [0, 1), got {self.overlap}")
        if not 0.0 < self.iou <= 1.0:
            raise ValueError(f"iou must be in (0, 1], got {self.iou}")

    def tile_wh(self, width: int, height: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """Tile size and overlap in pixels for a region of `width` x `height`, so that exactly cols x rows tiles
        cover it (InferenceSlicer steps by tile - overlap and puts the last tile flush with the edge)."""

        def axis(size: int, n: int) -> tuple[int, int]:
            if n == 1:
                return size, 0
            tile = math.ceil(size / (n - (n - 1) * self.overlap))
            return min(tile, size), math.floor(self.overlap * tile)

        (tw, ow), (th, oh) = axis(width, self.tiles[0]), axis(height, self.tiles[1])
        return (tw, th), (ow, oh)


@dataclass(frozen=True)
class SliceRegion:
    """A box in frame pixels whose tiles are run, with its own settings (None: the detector's)."""

    box: Box
    settings: SliceSettings | None = None


class SlicedDetector:
    """Any `Detector`, run on the full frame and on overlapping tiles of each region, merged per image.

    `regions`: boxes (or `SliceRegion`s) in frame pixels, clipped to each frame; None tiles the whole frame.
    Detections keep `data['class_name']`; boxes are in the frame's pixels, best score first.
    """

    def __init__(self, base: Detector, settings: SliceSettings | None = None, regions: Sequence[Box | SliceRegion] | None = None) -> None:
        self.base = base
        self.settings = settings or SliceSettings()
        self.names: tuple[str, ...] = tuple(base.names)
        self.regions: tuple[SliceRegion, ...] | None = None
        if regions is not None:
            self.regions = tuple(r if isinstance(r, SliceRegion) else SliceRegion(tuple(float(v) for v in r)) for r in regions)
            for r in self.regions:
                x1, y1, x2, y2 = r.box
                if not (x2 > x1 and y2 > y1):
                    raise ValueError(f"slicing region {r.box} must have x2 > x1 and y2 > y1")
        self.backend = f"{getattr(base, 'backend', '?')}+sliced"
        self._plans: dict[tuple[int, int], list] = {}

    def __repr__(self) -> str:
        where = "whole frame" if self.regions is None else f"{len(self.regions)} region(s)"
        return f"SlicedDetector({self.settings.tiles[0]}x{self.settings.tiles[1]}, overlap {self.settings.overlap}, {where})"

    def detect(self, images: Sequence[np.ndarray]) -> list[sv.Detections]:
        if not len(images):
            return []
        full = self.base.detect(images)
        return [self._merge(f, self._tiled(im)) for f, im in zip(full, images)]

    def tiles(self, width: int, height: int) -> list[Box]:
        """The tiles (frame pixels) a frame of this size is cut into; for inspection and tests."""
        return [t for (_, tiles, _) in self._plan(width, height) for t in tiles]

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

    def _plan(self, width: int, height: int) -> list[tuple[tuple[int, int, int, int], list[Box], sv.InferenceSlicer]]:
        """Per region: its box, its tiles in frame pixels, and the slicer that runs them (one batched call).
        Made once per frame size."""
        plan = self._plans.get((width, height))
        if plan is None:
            if len(self._plans) >= 16:  # frames of many sizes (patrol photos): keep the cache small
                self._plans.clear()
            plan = self._plans[(width, height)] = self._make_plan(width, height)
        return plan

    def _make_plan(self, width: int, height: int) -> list[tuple[tuple[int, int, int, int], list[Box], sv.InferenceSlicer]]:
        out = []
        for (x1, y1, x2, y2), s in self._regions(width, height):
            slice_wh, overlap_wh = s.tile_wh(x2 - x1, y2 - y1)
            if s.tiles == (1, 1) or min(slice_wh) < MIN_TILE_PX:
                continue
            offsets = sv.InferenceSlicer._generate_offset((x2 - x1, y2 - y1), slice_wh, overlap_wh)
            tiles = [(float(x1 + a), float(y1 + b), float(x1 + c), float(y1 + d)) for a, b, c, d in offsets]
            # which sides of each tile cut through the frame (not the frame's own border): boxes there are cut objects
            cuts = [(t[0] > 0, t[1] > 0, t[2] < width, t[3] < height) for t in tiles]
            slicer = sv.InferenceSlicer(
                callback=partial(self._detect_tiles, cuts=cuts),  # batched: all tiles of the region in one call
                slice_wh=slice_wh,
                overlap_wh=overlap_wh,
                overlap_filter=sv.OverlapFilter.NON_MAX_SUPPRESSION,
                iou_threshold=s.iou,
                batch_size=len(tiles),
            )
            out.append(((x1, y1, x2, y2), tiles, slicer))
        return out

    def _detect_tiles(self, tiles: list[np.ndarray], cuts: list[tuple[bool, bool, bool, bool]]) -> list[sv.Detections]:
        """The base detector on a batch of tiles, without boxes that touch a side where the tile cuts the frame.

        A tile edge through an object yields a box of its visible part; it would survive NMS next to the whole
        object's box (their IoU is low) and count as a second object. The object is whole in the neighbouring
        tile (the overlap) or in the full frame. Measured on garbage-cn val (2x2, street-v1): street-class
        precision 0.42 with these boxes kept, 0.78 without; recall 0.87 and 0.85 (full frame alone: 0.81, 0.79).
        """
        dets = self.base.detect(tiles)
        if len(cuts) != len(tiles):  # not the batch planned (never, with batch_size = number of tiles)
            return dets
        out = []
        for d, tile, (left, top, right, bottom) in zip(dets, tiles, cuts):
            if len(d):
                h, w = tile.shape[:2]
                mx, my = max(EDGE_PX, EDGE_SHARE * w), max(EDGE_PX, EDGE_SHARE * h)
                b = d.xyxy
                cut = (left & (b[:, 0] <= mx)) | (top & (b[:, 1] <= my)) | (right & (b[:, 2] >= w - mx)) | (bottom & (b[:, 3] >= h - my))
                d = d[~cut]
            out.append(d)
        return out

    def _tiled(self, image: np.ndarray) -> list[sv.Detections]:
        height, width = image.shape[:2]
        out = []
        for (x1, y1, x2, y2), _, slicer in self._plan(width, height):
            d = slicer(image[y1:y2, x1:x2])
            if len(d):
                d.xyxy = d.xyxy + np.array([x1, y1, x1, y1], dtype=d.xyxy.dtype)
                out.append(d)
        return out

    def _merge(self, full: sv.Detections, tiled: list[sv.Detections]) -> sv.Detections:
        parts = [d for d in (full, *tiled) if len(d)]
        if not parts:
            return full
        merged = sv.Detections.merge(parts) if len(parts) > 1 else parts[0]
        merged = merged.with_nms(threshold=self.settings.iou, class_agnostic=False)
        merged = merged[np.argsort(-merged.confidence, kind="stable")]
        merged.metadata = {}
        if "class_name" not in merged.data:  # a base detector without names in its data: fill them in
            merged = make_detections(merged.xyxy, merged.confidence, merged.class_id, self.names)
        return merged

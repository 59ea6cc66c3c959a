"""Small geometry helpers shared by config validation, rules and incident matching.

Polygon self-crossing is shapely (GEOS predicates); the rest stays hand-written: `box_iou` (measured faster than
`supervision.box_iou_batch` at the hot path's sizes, a pair or a frame's boxes against one: `streetorder bench`,
"geometry"), `box_overlap` (no library in the deps has intersection over the first box's area), `union_box` and
`haversine_m` (none has them), and `polygon_area` (shapely's area keeps rounding noise where this one cancels to
exactly 0 on collinear decimal points such as (0.1, 0.2), (0.2, 0.3), (0.3, 0.4), so it would stop refusing them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import shapely


def _intersection(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairwise intersection areas of (N,4) and (M,4) xyxy boxes, with the two arrays as float (N,4), (M,4)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    return np.prod(np.clip(br - tl, 0, None), axis=2), a, b


def _area(boxes: np.ndarray) -> np.ndarray:
    return np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (N,4) and (M,4) xyxy arrays."""
    inter, a, b = _intersection(a, b)
    return inter / (_area(a)[:, None] + _area(b)[None, :] - inter + 1e-9)


def box_overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise share of each box in `a` that lies inside each box in `b` (intersection / area of a)."""
    inter, a, _ = _intersection(a, b)
    return inter / (_area(a)[:, None] + 1e-9)


def covered_share(box, others: np.ndarray, grid: int = 12) -> float:
    """Share of `box` that the union of the boxes `others` covers (on a `grid` x `grid` raster of the box)."""
    if not len(others):
        return 0.0
    x1, y1, x2, y2 = (float(v) for v in box)
    xs = x1 + (np.arange(grid) + 0.5) * (x2 - x1) / grid
    ys = y1 + (np.arange(grid) + 0.5) * (y2 - y1) / grid
    inside_x = (xs[None, :] >= others[:, 0:1]) & (xs[None, :] <= others[:, 2:3])  # (n, grid)
    inside_y = (ys[None, :] >= others[:, 1:2]) & (ys[None, :] <= others[:, 3:4])
    return float((inside_y[:, :, None] & inside_x[:, None, :]).any(axis=0).mean())


def union_box(boxes: np.ndarray) -> tuple[float, float, float, float]:
    boxes = np.asarray(boxes).reshape(-1, 4)
    return (float(boxes[:, 0].min()), float(boxes[:, 1].min()), float(boxes[:, 2].max()), float(boxes[:, 3].max()))


def self_intersection(points: Sequence[tuple[float, float]]) -> tuple[int, int] | None:
    """The first pair (i, j), i < j, of non-adjacent edges of a closed polygon that share any point (crossing,
    touching or overlapping), or None if it is simple.

    Edge i runs from point i to point i+1 (the last edge closes back to point 0). A repeated point makes a
    zero-length edge, which meets the edges on either side of its neighbours, so it counts as a crossing too.
    Points that are NaN or infinite give None, as before: GEOS refuses them, and the frame check names them.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    n = len(pts)
    if not np.isfinite(pts).all():
        return None
    ends = np.roll(pts, -1, axis=0)
    edges = shapely.linestrings(np.stack([pts, ends], axis=1))
    dot = (pts == ends).all(axis=1)
    edges[dot] = shapely.points(pts[dot])  # GEOS finds nothing meeting a zero-length line; a point it does
    i, j = np.indices((n, n))
    meet = shapely.intersects(edges[:, None], edges[None, :]) & (j > i + 1) & ~((i == 0) & (j == n - 1))
    hits = np.argwhere(meet)  # row-major: the lowest i, then the lowest j
    return (int(hits[0, 0]), int(hits[0, 1])) if len(hits) else None


def polygon_area(points: Sequence[tuple[float, float]]) -> float:
    pts = np.asarray(points, dtype=np.float64)
    x, y = pts[:, 0], pts[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_000.0 * math.asin(min(1.0, math.sqrt(a)))

"""Geometry helpers against known values, degenerate cases included, and against the libraries they mirror."""

from __future__ import annotations

import numpy as np
import pytest
import supervision as sv

from pipeline.geometry import box_iou, box_overlap, haversine_m, polygon_area, self_intersection, union_box

SQUARE = [(0, 0), (10, 0), (10, 10), (0, 10)]


@pytest.mark.parametrize(
    "a, b, iou",
    [
        ([0, 0, 10, 10], [0, 0, 10, 10], 1.0),
        ([0, 0, 10, 10], [5, 0, 15, 10], 50 / 150),
        ([0, 0, 10, 10], [0, 0, 10, 20], 0.5),
        ([0, 0, 10, 10], [20, 20, 30, 30], 0.0),
        ([0, 0, 10, 10], [10, 0, 20, 10], 0.0),  # touching along an edge
        ([0, 0, 10, 10], [10, 10, 20, 20], 0.0),  # touching at a corner
        ([5, 5, 5, 5], [0, 0, 10, 10], 0.0),  # a point inside a box
        ([5, 5, 5, 5], [5, 5, 5, 5], 0.0),  # two equal points: no area, no overlap
        ([0, 0, 0, 10], [0, 0, 10, 10], 0.0),  # a line on the box's edge
    ],
)
def test_box_iou_known_values(a, b, iou):
    got = box_iou([a], [b])
    assert got.shape == (1, 1) and got.dtype == np.float64
    assert got[0, 0] == pytest.approx(iou, abs=1e-9)
    assert box_iou([b], [a])[0, 0] == pytest.approx(iou, abs=1e-9)


def test_box_iou_shapes_and_inputs():
    a = np.array([[0, 0, 10, 10], [5, 5, 15, 15]], dtype=np.float32)
    assert box_iou(a, a[:1]).shape == (2, 1)
    assert box_iou(np.zeros((0, 4)), a).shape == (0, 2)
    assert box_iou(a, np.zeros((0, 4))).shape == (2, 0)
    assert box_iou([0, 0, 10, 10], [0, 0, 10, 10]).shape == (1, 1)  # one flat box, as a list
    assert box_iou(np.array([[0, 0, 50_000, 50_000]], dtype=np.int32), np.array([[0, 0, 50_000, 50_000]], dtype=np.int32))[0, 0] == pytest.approx(1.0)


def test_box_iou_matches_supervision():
    """Kept hand-written for speed (see `geometry_bench`), so it must agree with `sv.box_iou_batch` (float32)."""
    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 1800, (60, 2))
    boxes = np.hstack([xy, xy + rng.uniform(0, 300, (60, 2))]).astype(np.float32)
    boxes[::7, 2] = boxes[::7, 0]  # some with no width
    a, b = boxes[:30], boxes[30:]
    np.testing.assert_allclose(box_iou(a, b), sv.box_iou_batch(a, b), atol=1e-6)
    np.testing.assert_allclose(box_iou(a, a).diagonal()[np.prod(a[:, 2:] - a[:, :2], axis=1) > 0], 1.0, atol=1e-6)


def test_box_overlap():
    inner, outer = [2, 2, 4, 4], [0, 0, 10, 10]
    assert box_overlap([inner], [outer])[0, 0] == pytest.approx(1.0)
    assert box_overlap([outer], [inner])[0, 0] == pytest.approx(4 / 100)
    assert box_overlap([[0, 0, 10, 10]], [[5, 0, 15, 10]])[0, 0] == pytest.approx(0.5)
    assert box_overlap([[0, 0, 10, 10]], [[10, 0, 20, 10]])[0, 0] == 0.0  # touching
    assert box_overlap([[5, 5, 5, 5]], [outer])[0, 0] == 0.0  # no area: nothing of it lies inside
    assert box_overlap(np.zeros((0, 4)), [outer]).shape == (0, 1)


def test_union_box():
    assert union_box([[0, 5, 10, 10], [2, 1, 4, 12]]) == (0.0, 1.0, 10.0, 12.0)
    assert union_box([1, 2, 3, 4]) == (1.0, 2.0, 3.0, 4.0)


@pytest.mark.parametrize(
    "points, crossing",
    [
        (SQUARE, None),
        ([(0, 0), (10, 0), (10, 10)], None),
        ([(0, 0), (4, 0), (4, 4), (2, 1), (0, 4)], None),  # concave, simple
        ([(0, 0), (100, 100), (100, 0), (0, 100)], (0, 2)),  # bow-tie
        ([(0, 0), (10, 0), (0, 10), (10, 10), (5, 20)], (1, 4)),  # edge 1 crosses edge 4 at (2, 8)
        ([(0, 0), (10, 0), (10, 10), (5, 0)], (0, 2)),  # a vertex touching a non-adjacent edge
        ([(0, 0), (4, 0), (4, 4), (2, 0), (0, 4)], (0, 2)),  # the same, inside the polygon
        ([(0, 0), (10, 0), (5, 0), (5, 5)], (0, 2)),  # folds back over itself
        ([(0, 0), (5, 5), (10, 10)], None),  # collinear triangle: no non-adjacent edges; the area check refuses it
        ([(0, 0), (5, 5), (10, 10), (2, 2)], (0, 2)),  # collinear, edges overlap
        ([(0, 0), (10, 0), (10, 0), (10, 10)], (0, 2)),  # a repeated point: zero-length edge 1
        ([(0, 0), (10, 0), (10, 10), (0, 0)], (0, 2)),  # the closing point repeated
        ([(0, 0), (10, 0), (10, 10), (0, 10), (5, 0)], (0, 3)),  # lowest i first, then lowest j
        ([(0, 0), (float("nan"), 1), (1, 1), (0, 1)], None),  # left to the frame check, as before
        ([(0, 0), (float("inf"), 1), (1, 1), (0, 1)], None),
    ],
)
def test_self_intersection(points, crossing):
    assert self_intersection(points) == crossing


def test_self_intersection_same_as_pairwise_reference():
    """The first meeting pair of non-adjacent edges, as the hand-written segment test it replaced found it,
    on random polygons with integer (pixel) corners, many of them touching or overlapping."""

    def orient(p, q, r):
        return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])

    def on(p, q, r):
        return min(p[0], q[0]) <= r[0] <= max(p[0], q[0]) and min(p[1], q[1]) <= r[1] <= max(p[1], q[1])

    def meet(p1, p2, q1, q2):
        d1, d2, d3, d4 = orient(q1, q2, p1), orient(q1, q2, p2), orient(p1, p2, q1), orient(p1, p2, q2)
        if ((d1 > 0) != (d2 > 0)) and ((d3 > 0) != (d4 > 0)) and 0 not in (d1, d2, d3, d4):
            return True
        return (d1 == 0 and on(q1, q2, p1)) or (d2 == 0 and on(q1, q2, p2)) or (d3 == 0 and on(p1, p2, q1)) or (d4 == 0 and on(p1, p2, q2))

    def reference(points):
        n = len(points)
        edges = [(points[i], points[(i + 1) % n]) for i in range(n)]
        for i in range(n):
            for j in range(i + 2, n):
                if not (i == 0 and j == n - 1) and meet(*edges[i], *edges[j]):
                    return i, j
        return None

    rng = np.random.default_rng(7)
    outcomes = set()
    for _ in range(1500):
        points = [tuple(map(int, p)) for p in rng.integers(0, 6, (int(rng.integers(3, 9)), 2))]
        expected = reference(points)
        assert self_intersection(points) == expected, points
        outcomes.add(expected is None)
    assert outcomes == {True, False}


@pytest.mark.parametrize(
    "points, area",
    [
        (SQUARE, 100.0),
        (SQUARE[::-1], 100.0),  # clockwise
        ([(0, 0), (10, 0), (10, 10)], 50.0),
        ([(0, 0), (4, 0), (4, 4), (2, 1), (0, 4)], 10.0),
        ([(0, 0), (5, 5), (10, 10)], 0.0),  # collinear
        ([(0, 0), (10, 0), (20, 0), (5, 0)], 0.0),
        ([(0.1, 0.2), (0.2, 0.3), (0.3, 0.4)], 0.0),  # collinear as typed in normalized coordinates: exactly 0
        ([(0.1, 0.1), (0.9, 0.1), (0.9, 0.9), (0.1, 0.9)], 0.64),
    ],
)
def test_polygon_area(points, area):
    assert polygon_area(points) == pytest.approx(area, abs=1e-12)


def test_haversine():
    assert haversine_m(30.0, 120.0, 30.0, 120.0) == 0.0
    assert haversine_m(0.0, 0.0, 0.0, 1.0) == pytest.approx(111_195, rel=1e-4)  # one degree of the equator
    assert haversine_m(30.25, 120.16, 30.26, 120.16) == pytest.approx(1112, rel=1e-3)

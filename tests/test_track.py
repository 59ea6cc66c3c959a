"""Stillness: when an object settled, and what does (not) restart its dwell."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import supervision as sv

from pipeline.config import TrackingConfig
from pipeline.scene.track import StillnessBook

T0 = datetime(2026, 11, 20, 22, 0)


def _dets(box, tid=1, cls="garbage"):
    return sv.Detections(xyxy=np.array([box], dtype=np.float32), tracker_id=np.array([tid]), data={"class_name": np.array([cls], dtype=object)})


def test_a_pile_partly_hidden_by_a_passer_by_keeps_its_dwell():
    """A passer-by hides the left half of a pile: the box shrinks and its centre shifts by more than the
    tolerance, but it stays inside where the pile settled, so the dwell does not restart (street-v2 saw exactly
    this in the garbage-pile scenario)."""
    book = StillnessBook(TrackingConfig())
    assert book.update(_dets([237, 442, 426, 553]), T0) == [T0]
    assert book.update(_dets([351, 442, 425, 548]), T0 + timedelta(seconds=4)) == [T0]
    assert book.update(_dets([238, 448, 357, 554]), T0 + timedelta(seconds=8)) == [T0]


def test_an_object_that_really_moves_restarts_its_dwell():
    book = StillnessBook(TrackingConfig())
    book.update(_dets([100, 100, 200, 200]), T0)
    later = T0 + timedelta(seconds=10)
    assert book.update(_dets([180, 100, 280, 200]), later) == [later]

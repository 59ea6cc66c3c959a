"""Tracking on a fixed camera: ByteTrack per class, and stillness: when an object settled, and what does (not)
restart its dwell."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import supervision as sv

from pipeline.config import TrackingConfig
from pipeline.scene.track import CameraTracker, StillnessBook

from ..factory import T0, dets, engine, jitter, run


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


def test_a_small_shift_is_still_and_a_larger_one_is_movement():
    """still_tolerance 0.25 of the box diagonal: 35 px for a 100 x 100 box."""
    book = StillnessBook(TrackingConfig())
    book.update(_dets([100, 100, 200, 200]), T0)
    assert book.update(_dets([130, 100, 230, 200]), T0 + timedelta(seconds=2)) == [T0]  # 30 px from where it settled
    moved = T0 + timedelta(seconds=4)
    assert book.update(_dets([140, 100, 240, 200]), moved) == [moved]  # 40 px
    assert book.update(_dets([160, 100, 260, 200]), T0 + timedelta(seconds=6)) == [moved]  # 20 px from its new place


def test_a_new_track_where_a_still_object_was_lost_inherits_its_dwell():
    book = StillnessBook(TrackingConfig())  # relink_s: 120
    book.update(_dets([100, 100, 200, 200], tid=1), T0)
    assert book.update(_dets([102, 101, 203, 199], tid=2), T0 + timedelta(seconds=120)) == [T0]
    # another class where it stood, or the same class elsewhere, starts afresh
    at = T0 + timedelta(seconds=122)
    assert book.update(_dets([102, 101, 203, 199], tid=3, cls="overflow"), at) == [at]
    assert book.update(_dets([300, 100, 400, 200], tid=4), at) == [at]


def test_a_track_lost_for_longer_than_relink_s_starts_afresh():
    book = StillnessBook(TrackingConfig(relink_s=60))
    book.update(_dets([100, 100, 200, 200], tid=1), T0)
    later = T0 + timedelta(seconds=62)
    assert book.update(_dets([100, 100, 200, 200], tid=2), later) == [later]


# ---- ByteTrack and stillness together -------------------------------------------------------------------


def test_track_lost_for_longer_than_the_buffer_keeps_dwell_and_incident():
    # 40 s without detections: ByteTrack drops the track (30 s buffer); the new track re-links by position.
    scene = lambda t: [("garbage", jitter((250, 300, 350, 380), t), 0.7)] if not 100 <= t < 140 else []
    incidents = run(engine(), scene, 300)
    assert len(incidents) == 1
    [r] = incidents.values()
    assert r.first_seen == T0 and not r.ended


def test_the_tracker_keeps_still_since_across_a_track_lost_by_bytetrack():
    tracker = CameraTracker(TrackingConfig())  # lost_track_s 30: a 42 s gap loses the track
    pile = dets(("garbage", (250, 300, 350, 380), 0.7))
    ids = []
    for t in [*range(0, 20, 2), *range(62, 80, 2)]:
        out = tracker.update(pile, T0 + timedelta(seconds=t))
        assert list(out.data["still_since"]) == [T0]
        ids.append(int(out.tracker_id[0]))
    assert ids[1] >= 0 and ids[-1] >= 0 and ids[1] != ids[-1]  # a new ByteTrack id after the gap, the same dwell


def test_the_tracker_on_an_empty_frame_and_a_frame_from_the_past():
    tracker = CameraTracker(TrackingConfig())
    pile = dets(("garbage", (250, 300, 350, 380), 0.7))
    for t in range(0, 20, 2):
        tracker.update(pile, T0 + timedelta(seconds=t))
    empty = tracker.update(dets(), T0 + timedelta(seconds=20))
    assert len(empty) == 0 and list(empty.data["still_since"]) == [] and list(empty.data["class_name"]) == []
    # an older frame (a replay started over) resets the camera's tracks: nothing has stood still since T0 any more
    back = T0 + timedelta(seconds=10)
    assert list(tracker.update(pile, back).data["still_since"]) == [back]


def test_a_reused_tick_hands_on_the_last_tracks_with_the_time_moved_on():
    """The change gate's reused ticks carry the detected frame's boxes again: once ByteTrack has had them twice
    (new tracks are confirmed then) it is not updated with them again, and the tracks, their ids and their dwell
    come out as when it was (static objects: a pile, a parked car, a person below the activation score)."""
    scene = dets(("garbage", (250, 300, 350, 380), 0.7), ("car", (500, 100, 700, 220), 0.8), ("person", (40, 40, 80, 160), 0.2))
    skipping, updating = CameraTracker(TrackingConfig()), CameraTracker(TrackingConfig())
    for t in range(0, 120, 2):
        detected = t % 20 == 0  # the detector ran every 20 s; the ticks between repeat its detections
        at = T0 + timedelta(seconds=t)
        again = dets(("garbage", (250, 300, 350, 380), 0.7), ("car", (500, 100, 700, 220), 0.8), ("person", (40, 40, 80, 160), 0.2))  # equal, not the same object
        a = skipping.update(scene if detected else again, at, reused=not detected)
        b = updating.update(scene, at)
        assert np.array_equal(a.xyxy, b.xyxy) and np.array_equal(a.tracker_id, b.tracker_id)
        assert list(a.data["class_name"]) == list(b.data["class_name"]) and list(a.data["still_since"]) == list(b.data["still_since"])
    assert list(a.data["still_since"])[:2] == [T0, T0] and sorted(a.tracker_id.tolist())[-2:] == [0, 0]


def test_a_tick_marked_reused_with_other_boxes_is_tracked():
    tracker = CameraTracker(TrackingConfig())
    tracker.update(dets(("garbage", (250, 300, 350, 380), 0.7)), T0)
    moved = tracker.update(dets(("garbage", (250, 300, 350, 380), 0.7), ("garbage", (600, 300, 700, 380), 0.7)), T0 + timedelta(seconds=2), reused=True)
    assert len(moved) == 2 and list(moved.data["still_since"]) == [T0, T0 + timedelta(seconds=2)]


def test_relinking_by_exact_position_picks_what_the_best_overlap_picks():
    """The shortcut for a box standing exactly where a lost object settled pops the state the IoU search would
    (the first of the best overlaps), duplicates and empty boxes included."""
    from pipeline.geometry import box_iou
    from pipeline.scene.track import _Still

    rng = np.random.default_rng(0)
    lost = T0 - timedelta(seconds=5)
    for _ in range(300):
        corners = rng.integers(0, 12, (5, 4)).astype(np.float32)
        anchors = np.column_stack([np.minimum(corners[:, 0], corners[:, 2]), np.minimum(corners[:, 1], corners[:, 3]),
                                   np.maximum(corners[:, 0], corners[:, 2]), np.maximum(corners[:, 1], corners[:, 3])])
        if rng.random() < 0.5:  # two lost objects settled in the same place
            anchors[4] = anchors[2]
        book = StillnessBook(TrackingConfig())
        book.states = {("garbage", k): _Still(a.copy(), lost, lost, a.copy()) for k, a in enumerate(anchors)}
        box = anchors[rng.integers(0, 5)].copy() if rng.random() < 0.7 else anchors[0] + rng.integers(-2, 3, 4)
        iou = box_iou(anchors, box[None].astype(np.float32))[:, 0]
        want = int(iou.argmax()) if iou.max() >= 0.5 else None
        got = book._relink("garbage", box, T0, set())
        assert (got is None) == (want is None)
        if want is not None:
            assert ("garbage", want) not in book.states and len(book.states) == 4


def test_a_box_seen_again_where_it_was_skips_the_movement_check_with_the_same_dwell():
    """Most ticks of a static scene show each object exactly where it was: `StillnessBook` skips the movement
    check for those (`_Still.steady`). Over a random walk of repeats, jitter, real moves, drop-outs and track-id
    switches (relinks, which skip the check on their own frame), the dwell is what checking every frame gives."""

    class EveryFrame(StillnessBook):
        def update(self, detections, at):
            for st in self.states.values():
                st.steady = False
            return super().update(detections, at)

    rng = np.random.default_rng(3)
    fast, slow = StillnessBook(TrackingConfig()), EveryFrame(TrackingConfig())
    boxes = {k: np.array([100.0 + 500 * k, 200, 400 + 500 * k, 300]) for k in range(3)}  # wide: a relink may move it (below)
    tids = {k: k + 1 for k in boxes}
    skipped = 0
    for i in range(600):
        at = T0 + timedelta(seconds=2 * i)
        for k in boxes:
            r = rng.random()
            if r < 0.05:
                boxes[k] = boxes[k] + rng.normal(0, 25, 4)  # jitter, sometimes past the tolerance
            elif r < 0.08:
                boxes[k] = boxes[k] + np.array([60.0, 0, 60, 0])  # moved
            elif r < 0.10:
                tids[k] += 10  # the tracker blinked: a new id where the object stands
            elif r < 0.12:  # a new id 90 px aside: relinked (IoU 0.54), yet beyond the stillness tolerance (79 px)
                tids[k] += 10
                boxes[k] = boxes[k] + np.array([90.0, 0, 90, 0]) * rng.choice([-1, 1])
        shown = [k for k in boxes if rng.random() > 0.05]  # drop-outs
        d = sv.Detections(
            xyxy=np.array([boxes[k] for k in shown], dtype=np.float32).reshape(-1, 4), tracker_id=np.array([tids[k] for k in shown], dtype=int),
            data={"class_name": np.array(["garbage"] * len(shown), dtype=object)},
        )
        skipped += sum(st.steady for st in fast.states.values())
        assert fast.update(d, at) == slow.update(d, at), i
    assert skipped > 500  # the walk did take the shortcut

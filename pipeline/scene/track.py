"""Tracking on a fixed camera: ByteTrack (from the `trackers` library) plus how long each object has stood still.

ByteTrack runs per class on frame timestamps, so its lost-track buffer is in seconds and holds at one frame
every 2 s. On top of it, `StillnessBook` keeps, per track, where the object settled and since when. When an
object's track is lost (a long dropout, an id switch) and a new one starts where it stood, the new track
inherits the old one's `still_since`: a garbage pile does not become 'new' because the tracker blinked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import supervision as sv
from trackers import ByteTrackTracker

from ..config import TrackingConfig
from ..geometry import box_iou, box_overlap


@dataclass
class _Still:
    anchor: np.ndarray  # box where the object settled
    since: datetime
    last_seen: datetime
    last_box: np.ndarray
    # `last_box` is known not to have moved from `anchor` (checked, or the anchor itself); False by default, so a
    # state restored from an older checkpoint is checked once
    steady: bool = False


# Share of a box inside the settled box above which a change of shape is occlusion, not movement.
OCCLUDED_INSIDE = 0.9


class StillnessBook:
    """`still_since` per tracked detection, surviving track-id switches by position."""

    def __init__(self, cfg: TrackingConfig) -> None:
        self.cfg = cfg
        self.states: dict[tuple[str, int], _Still] = {}
        self._untracked = 0

    def _moved(self, anchor: np.ndarray, box: np.ndarray) -> bool:
        """Whether the object left where it settled. A box that shrank inside its settled box (a passer-by hides
        part of a pile) has not moved, even when its centre shifted: occlusion must not restart the dwell."""
        if float(box_overlap(box[None], anchor[None])[0, 0]) >= OCCLUDED_INSIDE:
            return False
        c0 = (anchor[:2] + anchor[2:]) / 2
        c1 = (box[:2] + box[2:]) / 2
        diag = float(np.hypot(*(anchor[2:] - anchor[:2])))
        return float(np.hypot(*(c1 - c0))) > self.cfg.still_tolerance * max(diag, 1.0)

    def _relink(self, cls: str, box: np.ndarray, at: datetime, taken: set) -> _Still | None:
        """A recently lost still object of the same class where this one stands (best IoU >= 0.5)."""
        window = timedelta(seconds=self.cfg.relink_s)
        keys = [k for k, st in self.states.items() if k[0] == cls and k not in taken and st.last_seen < at and at - st.last_seen <= window]
        if not keys:
            return None
        anchors = np.array([self.states[k].anchor for k in keys])
        if box[2] > box[0] and box[3] > box[1]:
            # standing exactly where one settled (a reused tick's unconfirmed box): IoU 1, the best there is; one
            # comparison for all candidates (one `array_equal` each was a third of a busy scene's tracking)
            exact = np.flatnonzero((anchors == box).all(axis=1))
            if len(exact):
                return self.states.pop(keys[exact[0]])
        iou = box_iou(anchors, box[None])[:, 0]
        best = int(iou.argmax())
        return self.states.pop(keys[best]) if iou[best] >= 0.5 else None

    def update(self, detections: sv.Detections, at: datetime) -> list[datetime]:
        """Record this frame; return, per detection, the time since which it has stood where it is."""
        out: list[datetime] = []
        seen: set[tuple[str, int]] = set()
        for box, cls, tid in zip(detections.xyxy, detections.data["class_name"], detections.tracker_id):
            if tid < 0:  # not (yet) confirmed by ByteTrack: keep it under a private negative key
                self._untracked -= 1
                tid = self._untracked
            key = (str(cls), int(tid))
            st = self.states.get(key)
            if st is None:
                st = self._relink(str(cls), box, at, seen)
                if st is None:
                    st = _Still(box.copy(), at, at, box.copy(), steady=True)
                else:
                    st.steady = False  # taken over where it settled, by IoU: whether it moved is checked from the next frame on
                self.states[key] = st
            elif not (st.steady and (st.last_box == box).all()):  # the same box as last time has not moved since (most ticks of a static scene)
                if self._moved(st.anchor, box):
                    st.anchor, st.since = box.copy(), at
                st.steady = True
            st.last_seen, st.last_box = at, box.copy()
            seen.add(key)
            out.append(st.since)
        # Unconfirmed observations only need to last until ByteTrack confirms them; lost tracks until re-link ends.
        horizon = {True: timedelta(seconds=self.cfg.lost_track_s), False: timedelta(seconds=self.cfg.relink_s + self.cfg.lost_track_s)}
        self.states = {k: s for k, s in self.states.items() if at - s.last_seen <= horizon[k[1] < 0]}
        return out


class CameraTracker:
    """ByteTrack per class for one camera, fed frame timestamps; adds `tracker_id` and `still_since`."""

    def __init__(self, cfg: TrackingConfig) -> None:
        self.cfg = cfg
        self.trackers: dict[str, ByteTrackTracker] = {}
        self.stillness = StillnessBook(cfg)
        self.last_at: datetime | None = None
        self._last: tuple[sv.Detections, sv.Detections, int] | None = None  # the last ByteTrack update: input, tracks, repeats

    def _tracker(self, cls: str) -> ByteTrackTracker:
        if cls not in self.trackers:
            self.trackers[cls] = ByteTrackTracker(
                lost_track_buffer=max(1, round(self.cfg.lost_track_s * 30)),  # the library counts 30 fps frames
                track_activation_threshold=self.cfg.activation_score,
                minimum_consecutive_frames=1,
                minimum_iou_threshold=self.cfg.min_iou,
                high_conf_det_threshold=self.cfg.high_score,
            )
        return self.trackers[cls]

    def update(self, detections: sv.Detections, at: datetime, reused: bool = False) -> sv.Detections:
        """Track one frame. Frames must come in time order; an older frame resets the camera's tracks.

        `reused`: the change gate's repeat of the last detected frame, with its detections. Once ByteTrack has
        been updated twice running with these boxes (a new track is confirmed on its second update), another
        update with them gives the same tracks: they are handed on without one (on a static night those updates
        were most of the engine's time), and only how long each object has stood still moves on with the time.
        (A moving object's Kalman velocity is then not damped by repeats of a frame that did not change.)"""
        if self.last_at is not None and at < self.last_at:
            self.trackers.clear()
            self.stillness = StillnessBook(self.cfg)
            self._last = None
        self.last_at = at
        last = getattr(self, "_last", None)  # (input, tracks, updates in a row with that input) of the last ByteTrack update
        same = last is not None and _same_boxes(last[0], detections)
        if reused and same and last[2] >= 2:
            out = _copy(last[1])
            out.data["still_since"] = np.array(self.stillness.update(out, at), dtype=object)
            return out
        repeats = last[2] + 1 if same else 1
        ts = at.timestamp()
        parts = []
        names = detections.data.get("class_name", np.array([], dtype=object))
        for cls in sorted(set(map(str, names)) | set(self.trackers)):
            mine = names == cls if len(detections) else None
            tracker = self._tracker(cls)
            if not tracker.tracks and (mine is None or not mine.any()):
                continue  # no box and no track to age: ByteTrack would answer nothing and keep no state
            tracked = tracker.update(_subset(detections, mine), timestamp=ts)
            if len(tracked):
                parts.append(tracked)
        if not parts:
            out = sv.Detections.empty()
            out.tracker_id = np.zeros(0, dtype=int)
            out.data = {"class_name": np.array([], dtype=object)}
        else:
            out = concat(parts)
        self._last = (detections, _copy(out), repeats)
        out.data["still_since"] = np.array(self.stillness.update(out, at), dtype=object)
        return out


# The night job tracks every sampling tick of every camera, so the per-class split and the merge of ByteTrack's
# answers run hundreds of thousands of times a night: for plain boxes they build `Detections` directly, without
# the general indexing and merging (and their validation) that masks and metadata would need.


def _same_boxes(a: sv.Detections, b: sv.Detections) -> bool:
    """The same detections (a reused tick's are the detected frame's, copied)."""
    return (a.xyxy is b.xyxy or np.array_equal(a.xyxy, b.xyxy)) and np.array_equal(a.confidence, b.confidence) and np.array_equal(a.class_id, b.class_id)


def _copy(d: sv.Detections) -> sv.Detections:
    """Tracks as handed on: arrays shared (never written in place), the data dict its own."""
    return sv.Detections(xyxy=d.xyxy, confidence=d.confidence, class_id=d.class_id, tracker_id=d.tracker_id, mask=d.mask,
                         data={k: v for k, v in d.data.items() if k != "still_since"}, metadata=dict(d.metadata))


def _plain(d: sv.Detections) -> bool:
    return d.mask is None and not d.metadata and d.confidence is not None and d.class_id is not None


def _subset(d: sv.Detections, keep: np.ndarray | None) -> sv.Detections:
    """`d[keep]`; `keep` None: all of `d` (an empty frame)."""
    if keep is None:
        return d
    if not _plain(d):
        return d[keep]
    return sv.Detections(
        xyxy=d.xyxy[keep], confidence=d.confidence[keep], class_id=d.class_id[keep],
        tracker_id=None if d.tracker_id is None else d.tracker_id[keep], data={k: v[keep] for k, v in d.data.items()},
    )


def concat(parts: list[sv.Detections]) -> sv.Detections:
    """`sv.Detections.merge(parts)` for plain boxes (ByteTrack's per-class answers, the static objects beside
    them), without the general merge's validation."""
    if len(parts) == 1:
        return parts[0]
    keys = set(parts[0].data)
    if not all(_plain(p) and p.tracker_id is not None and set(p.data) == keys for p in parts):
        return sv.Detections.merge(parts)
    return sv.Detections(
        xyxy=np.concatenate([p.xyxy for p in parts]), confidence=np.concatenate([p.confidence for p in parts]),
        class_id=np.concatenate([p.class_id for p in parts]), tracker_id=np.concatenate([p.tracker_id for p in parts]),
        data={k: np.concatenate([p.data[k] for p in parts]) for k in parts[0].data},
    )

"""What is new in a camera's view and has stayed put, whatever it is (物品遗留, "left object" analytics).

Street vending has no class a detector knows well: a canopy, a glass snack cart or crates of produce are none of
COCO's classes. What they share is that they were not there before and now stay. `StaticScene` keeps, per camera,
two pictures of the scene on a small colour copy (a dual background, as in Porikli's left-object detection):

- a *long-term* picture of the empty scene, updated only where nothing new stands (it follows lighting, not
  objects);
- a *short-term* picture that absorbs whatever stops moving within about a minute.

A pixel that differs from the long-term picture but matches the short-term one holds something new that stopped
there; one that differs from both is something moving (a passer-by, or someone walking in front of a stall, which
keeps the stall's dwell rather than restarting it). Regions of the first kind become `StaticObject`s, each with
the time it appeared; the rules decide what they are (a stall when people come and go beside it or goods lie in
it; nothing when the detector explains it as a parked car or a person).

Robust by construction to what a night camera does:
- sensor noise: the copy is an area-average of the frame, blurred;
- slow brightness drift, auto gain, night and day: each copy's brightness is matched to the long-term picture's
  before comparing, and the long-term picture follows the light where nothing new stands;
- shadows and lamps: a change that keeps the local texture (normalised cross-correlation) and the colour is
  light, not an object;
- a moved camera (a PTZ preset change, a bump): most of the picture changing at once for `reset_after` frames
  resets the pictures instead of flooding proposals (`resets` counts them);
- a dark, uniform ("no signal"), frozen or corrupt frame is never learnt: it neither feeds the pictures nor
  counts as time an object stayed. Frozen is pixel-identical to the last frame on a camera whose frames otherwise
  differ everywhere (sensor noise); a picture without noise (composed, or compressed flat) repeats where nothing
  moves, and that is the scene standing still. Only live time counts: a gap between two live frames credits at
  most `max_gap_s`.

Cost: a few array operations on a copy of `size` px, only on frames the detector ran on (the change gate's
reuses are skipped: they repeat the picture already seen).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import cv2
import numpy as np
import supervision as sv

from ..config import CameraConfig, StaticConfig
from ..geometry import box_iou, covered_share
from ..rules.registry import STATIC_CLASS, zone_kind


def reads_static(camera: CameraConfig) -> bool:
    """Whether a camera's zones have a rule that reads static objects (and its static evidence is on); a camera
    with none keeps no pictures (it costs nothing)."""
    return camera.static.enabled and any(zone_kind(z.kind).static for z in camera.zones)


def static_detections(objects: list[StaticObject], like: sv.Detections) -> sv.Detections:
    """Static objects as detections of class `STATIC_CLASS`, shaped like the frame's tracked `like` (same data
    keys) so the rules, evidence and incidents treat them as any other box. Untracked (`tracker_id` -1): each
    carries its own `still_since`, the time it appeared, and `static`, the `StaticObject` itself (who came by, what
    covered it). Score: the share of its box the region fills."""
    n = len(objects)
    out = sv.Detections(
        xyxy=np.array([o.box for o in objects], np.float32).reshape(-1, 4),
        confidence=np.array([o.fill for o in objects], np.float32),
        class_id=np.full(n, -1, int),
        tracker_id=np.full(n, -1, int),
    )
    out.data = {k: np.full(n, None, dtype=object) for k in like.data}
    out.data["class_name"] = np.full(n, STATIC_CLASS, dtype=object)
    out.data["still_since"] = np.array([o.since for o in objects] + [None], dtype=object)[:n]
    out.data["static"] = np.array([*objects, None], dtype=object)[:n]
    return out


@dataclass
class StaticObject:
    """A region that is new in the scene and has stayed put: where, since when, and who came by."""

    id: int
    box: tuple[float, float, float, float]  # full-frame pixels
    since: datetime  # when it appeared (live camera time)
    area: float  # share of the frame
    fill: float  # share of its box the region fills
    visitors: set[int] = field(default_factory=set)  # track ids of people seen beside it while it stood
    last_seen: datetime | None = None
    seen: int = 0  # frames it was reported in
    covered: dict[str, int] = field(default_factory=dict)  # of those, frames in which boxes of a class covered it

    def covered_ratio(self, classes) -> float:
        """Share of its frames in which the detector saw one of `classes` covering it: a parked car stays a car
        through the frames the detector missed it (dropouts), a stall stays one when a car passes in front."""
        return max((self.covered.get(c, 0) for c in classes), default=0) / self.seen if self.seen else 0.0

    def dwell_s(self, at: datetime) -> float:
        return (at - self.since).total_seconds()


_CHROMA_MIN_LUMA = 40.0  # below this mean brightness colour is noise (night, IR): compare brightness only
_TEXTURE_VAR = 4.0  # local variance (gray levels²) above which a window has texture to correlate
_ILLUM_NCC = 0.8  # local correlation with the empty scene above which a change is light, not an object
_FLAT_RATIO = (0.6, 1.67)
# Live frames that must see a pixel standing still: one frame after a long gap (the change gate's refresh) cannot
# tell a thing that stays from a picture that froze with a passer-by in it; the next live frame can.
_MIN_STILL_FRAMES = 2
_NOISE_FRAMES = 15  # recent frames that say whether a camera's picture carries sensor noise
_NOISY_SHARE = 0.1  # share of pixels that change by a gray level or two from frame to frame: sensor noise  # brightness ratio that counts as light on a flat (untextured) patch


class StaticScene:
    """The long-term and short-term pictures of one camera at one frame size, and the static objects in it.

    >>> scene = StaticScene(camera.static, 1920, 1080)
    >>> objects = scene.update(frame_bgr, at)          # every frame the detector ran on, in time order
    >>> scene.observe(tracked, ("person",), reach=1.0, cover=0.6)  # who came by, what covers it
    """

    def __init__(self, cfg: StaticConfig, width: int, height: int, ignore: np.ndarray | None = None) -> None:
        self.cfg = cfg
        scale = min(1.0, cfg.size / max(width, height))
        self.size = (max(8, round(width * scale)), max(8, round(height * scale)))
        self.scale = (width / self.size[0], height / self.size[1])
        self.full = (width, height)
        self.valid = np.ones(self.size[::-1], bool) if ignore is None else ~cv2.resize(ignore.astype(np.uint8), self.size, interpolation=cv2.INTER_NEAREST).astype(bool)
        self.long: np.ndarray | None = None  # (h, w, 3) float32 YCrCb
        self.short: np.ndarray | None = None
        self.background: np.ndarray | None = None  # pixels that showed the empty scene in the last frame
        self.fg_since: np.ndarray | None = None  # live seconds at which each pixel became new (nan: not new)
        self.static_s: np.ndarray | None = None  # live seconds each new pixel has been seen standing still
        self.still_seen: np.ndarray | None = None  # live frames that saw it standing still
        self.live_s = 0.0  # live camera time seen so far (the clock of fg_since)
        self.last_at: datetime | None = None
        self.last_luma: np.ndarray | None = None
        self.changes: list[float] = []  # share of the copy's pixels that changed a little, last frames that changed
        self.big_changes = 0
        self.resets = 0
        self.skipped = {"dark": 0, "frozen": 0, "corrupt": 0}
        self.objects: list[StaticObject] = []
        self.next_id = 1
        self._window: np.ndarray | None = None

    # -- the per-frame step ----------------------------------------------------------------------------------

    def update(self, image: np.ndarray, at: datetime, reused: bool = False) -> list[StaticObject]:
        """Learn from one frame (BGR, full size) taken at `at`; the static objects standing now.

        `reused`: the change gate's repeat of the last frame the detector ran on (nothing new to learn)."""
        if reused or not self.cfg.enabled:
            return self.objects
        small = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        luma8 = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        if self._unusable(luma8):
            # nothing is learnt from it; what stood at the last live frame is still reported for up to
            # `max_gap_s` (the most a gap may count towards a dwell), then nothing can be said to stand there
            gone = self.last_at is None or (at - self.last_at).total_seconds() > self.cfg.max_gap_s
            return [] if gone else self.objects
        cur = cv2.cvtColor(small, cv2.COLOR_BGR2YCrCb).astype(np.float32)
        if self.cfg.blur_sigma > 0:
            cur = cv2.GaussianBlur(cur, (0, 0), self.cfg.blur_sigma)
        if self.long is None or (self.last_at is not None and at < self.last_at):
            self._reset(cur, at)
            return self.objects
        dt = min(max((at - self.last_at).total_seconds(), 0.0), self.cfg.max_gap_s)
        self.last_at = at
        cur = self._match_brightness(cur)
        new = self._differs(cur, self.long, light_tolerant=True)
        if self._moved(cur, float(new[self.valid].mean())):
            self.big_changes += 1
            if self.big_changes >= self.cfg.reset_after:
                self.resets += 1
                self._reset(cur, at)
            else:
                self.skipped["corrupt"] += 1  # one frame unlike the scene (a glitch, a flash): not learnt
            return self.objects
        self.big_changes = 0
        self.background = ~new
        self.live_s += dt
        moving = self._differs(cur, self.short, light_tolerant=False)
        self._learn(cur, new, moving, dt)
        self.objects = self._regions(new, cur, at)
        return self.objects

    def _unusable(self, luma8: np.ndarray) -> bool:
        """Dark, uniform (no signal) or frozen: nothing in it may count as something that stayed."""
        mean, std = cv2.meanStdDev(luma8)
        if float(mean[0, 0]) < self.cfg.dark_luma or float(std[0, 0]) < self.cfg.min_contrast:
            self.skipped["dark"] += 1
            return True
        if self.last_luma is None:
            self.last_luma = luma8
            return False
        diff = cv2.absdiff(luma8, self.last_luma)
        self.last_luma = luma8
        if diff.any():
            # sensor noise: a gray level or two, almost everywhere (an object changes a region, by a lot)
            self.changes = (self.changes + [float(np.count_nonzero(diff <= 2) - np.count_nonzero(diff == 0)) / diff.size])[-_NOISE_FRAMES:]
            return False
        # Pixel-identical to the last frame: frozen, if this camera's frames otherwise differ everywhere (sensor
        # noise). A picture with no noise at all (a composed or heavily compressed stream) repeats itself where
        # nothing moves; that is the scene standing still, not the stream.
        frozen = bool(self.changes) and float(np.median(self.changes)) >= _NOISY_SHARE
        if frozen:
            self.skipped["frozen"] += 1
        return frozen

    def _moved(self, cur: np.ndarray, share: float) -> bool:
        """Most of the picture is new, or all of it shifted (phase correlation with the empty scene): the camera
        moved, switched day/night mode, or the frame is corrupt."""
        if share >= self.cfg.reset_fraction:
            return True
        if share < 0.02:
            return False
        if self._window is None:
            self._window = cv2.createHanningWindow(self.size, cv2.CV_32F)
        (dx, dy), response = cv2.phaseCorrelate(self.long[..., 0], cur[..., 0], self._window)
        return response >= 0.1 and float(np.hypot(dx, dy)) >= 1.0

    def _reset(self, cur: np.ndarray, at: datetime) -> None:
        """Start afresh from this picture: the first frame, a moved camera, or time running backwards."""
        self.long, self.short = cur.copy(), cur.copy()
        self.background = np.ones(cur.shape[:2], bool)
        self.fg_since = np.full(cur.shape[:2], np.nan, np.float32)
        self.static_s = np.zeros(cur.shape[:2], np.float32)
        self.still_seen = np.zeros(cur.shape[:2], np.uint8)
        self.last_at, self.big_changes, self.objects = at, 0, []

    def _match_brightness(self, cur: np.ndarray) -> np.ndarray:
        """Match the copy's brightness (mean and spread) and colour cast to the long-term picture's, measured
        on the pixels that showed the empty scene last time: a large new object must not shift the match."""
        bg = self.valid & self.background
        if bg.sum() < 0.2 * self.valid.sum():
            bg = self.valid
        y, ref = cur[..., 0][bg], self.long[..., 0][bg]
        gain = min(max(float(ref.std()) / max(float(y.std()), 1.0), 0.5), 2.0)
        out = cur.copy()
        out[..., 0] = (cur[..., 0] - float(y.mean())) * gain + float(ref.mean())
        for c in (1, 2):
            out[..., c] -= float(cur[..., c][bg].mean() - self.long[..., c][bg].mean())
        return out

    def _differs(self, cur: np.ndarray, ref: np.ndarray, light_tolerant: bool) -> np.ndarray:
        """Pixels where `cur` shows something other than `ref`; with `light_tolerant`, a change that keeps the
        local texture and colour (a shadow, a lamp) does not count."""
        dy = np.abs(cur[..., 0] - ref[..., 0])
        colour = float(ref[..., 0].mean()) >= _CHROMA_MIN_LUMA
        dc = (np.abs(cur[..., 1] - ref[..., 1]) + np.abs(cur[..., 2] - ref[..., 2])) if colour else np.zeros_like(dy)
        changed = (dy > self.cfg.pixel_threshold) | (dc > self.cfg.colour_threshold)
        if not light_tolerant:
            return changed
        clipped = (cur[..., 0] >= 245) | (ref[..., 0] >= 245) | (cur[..., 0] <= 8) | (ref[..., 0] <= 8)  # saturated: no texture, no colour to judge
        a, b = cur[..., 0], ref[..., 0]
        k = (5, 5)
        ma, mb = cv2.blur(a, k), cv2.blur(b, k)
        va = np.maximum(cv2.blur(a * a, k) - ma * ma, 0)
        vb = np.maximum(cv2.blur(b * b, k) - mb * mb, 0)
        cov = cv2.blur(a * b, k) - ma * mb
        textured = (va > _TEXTURE_VAR) & (vb > _TEXTURE_VAR)
        ncc = cov / np.sqrt(va * vb + 1e-6)
        ratio = (a + 1.0) / (b + 1.0)
        light = np.where(textured, ncc >= _ILLUM_NCC, (ratio >= _FLAT_RATIO[0]) & (ratio <= _FLAT_RATIO[1]))
        return changed & ~clipped & ~(light & (dc <= self.cfg.colour_threshold))

    def _learn(self, cur: np.ndarray, new: np.ndarray, moving: np.ndarray, dt: float) -> None:
        """Advance the pictures and each pixel's clocks by `dt` live seconds."""
        # first seen now (the change gate bisects to the first changed frame); back to the scene: not new
        self.fg_since = np.where(new, np.fmin(self.fg_since, np.float32(self.live_s)), np.float32(np.nan))
        self.static_s = np.where(new, self.static_s + np.float32(dt) * ~moving, np.float32(0.0))
        self.still_seen = np.where(new, np.minimum(self.still_seen + ~moving, _MIN_STILL_FRAMES), np.uint8(0)).astype(np.uint8)
        cv2.accumulateWeighted(cur, self.short, 1.0 - np.exp(-dt / self.cfg.short_s))
        cv2.accumulateWeighted(cur, self.long, 1.0 - np.exp(-dt / self.cfg.long_s), mask=(~new).astype(np.uint8))
        absorbed = new & (self.live_s - self.fg_since >= self.cfg.absorb_after_s)
        if absorbed.any():  # stood so long it is part of the scene now (a new kiosk, a car left for days)
            self.long[absorbed] = cur[absorbed]
            self.fg_since[absorbed] = np.nan
            self.static_s[absorbed] = 0.0

    def _forget(self, region: np.ndarray, cur: np.ndarray) -> None:
        """`region` shows the empty scene now: take it into the long-term picture as it is."""
        self.long[region] = cur[region]
        self.fg_since[region] = np.nan
        self.static_s[region] = 0.0

    def _regions(self, new: np.ndarray, cur: np.ndarray, at: datetime) -> list[StaticObject]:
        """Connected regions of new pixels that have stood still long enough, matched to the last frame's
        objects (an object keeps its id, visitors and appearance time while its region overlaps). A region whose
        outline shows in the old picture but not in the new one is a ghost: something that was there when the
        picture was learnt has left (a walker in the first frame, a cleared stall); the picture takes it in."""
        mask = (new & (self.static_s >= self.cfg.min_still_s) & (self.still_seen >= _MIN_STILL_FRAMES) & self.valid).astype(np.uint8)
        kernel = np.ones((3, 3), np.uint8)
        mask = cv2.morphologyEx(cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel, iterations=2), cv2.MORPH_OPEN, kernel)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        total = float(self.size[0] * self.size[1])
        edges_now = edges_then = None
        sx, sy = self.scale
        found = []
        for k in range(1, count):
            x, y, w, h, area = (int(v) for v in stats[k])
            share = area / total
            if not self.cfg.min_area <= share <= self.cfg.max_area:
                continue
            region = labels == k
            if edges_now is None:
                edges_now, edges_then = _edges(cur[..., 0]), _edges(self.long[..., 0])
            if _is_ghost(region, edges_now, edges_then):
                self._forget(region, cur)
                continue
            appeared = self.fg_since[region]
            appeared = appeared[~np.isnan(appeared)]
            if not len(appeared):
                continue
            age = self.live_s - float(np.median(appeared))
            box = (x * sx, y * sy, (x + w) * sx, (y + h) * sy)
            found.append((box, at - timedelta(seconds=age), share, area / float(w * h)))
        return self._match(found, at)

    def _match(self, found: list, at: datetime) -> list[StaticObject]:
        old = self.objects
        out: list[StaticObject] = []
        taken: set[int] = set()
        if old and found:
            iou = box_iou(np.array([f[0] for f in found], float), np.array([o.box for o in old], float))
        for i, (box, since, share, fill) in enumerate(found):
            j = -1
            if old:
                for j_ in np.argsort(-iou[i]):
                    if iou[i, j_] >= 0.3 and int(j_) not in taken:
                        j = int(j_)
                        break
            if j >= 0:
                taken.add(j)
                o = old[j]
                o.box, o.area, o.fill, o.last_seen, o.since = box, share, fill, at, since
                out.append(o)
            else:
                out.append(StaticObject(self.next_id, box, since, share, fill, last_seen=at))
                self.next_id += 1
        return out

    # -- what the detector says about them ------------------------------------------------------------------

    def observe(self, detections: sv.Detections, people: tuple[str, ...], reach: float, cover: float) -> None:
        """One frame's tracked detections beside the standing objects: people within `reach` of an object's size
        from its box are its visitors (a vendor or customers coming and going make a stall of it), and a class
        whose boxes cover `cover` of it is counted as covering it in this frame."""
        if not self.objects:
            return
        names = detections.data.get("class_name", np.array([], dtype=object))
        is_person = np.isin(names, people) if len(detections) else np.zeros(0, bool)
        for o in self.objects:
            o.seen += 1
            if not len(detections):
                continue
            x1, y1, x2, y2 = o.box
            xyxy = detections.xyxy
            gap_x = np.maximum(0, np.maximum(xyxy[:, 0] - x2, x1 - xyxy[:, 2]))
            gap_y = np.maximum(0, np.maximum(xyxy[:, 1] - y2, y1 - xyxy[:, 3]))
            gap = np.hypot(gap_x, gap_y)
            for tid in detections.tracker_id[is_person & (gap <= reach * max(x2 - x1, y2 - y1))]:
                o.visitors.add(int(tid))
            touching = gap == 0
            for cls in set(names[touching]):
                if covered_share(o.box, xyxy[touching & (names == cls)]) >= cover:
                    o.covered[cls] = o.covered.get(cls, 0) + 1


def _edges(luma: np.ndarray) -> np.ndarray:
    gx = cv2.Sobel(luma, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(luma, cv2.CV_32F, 0, 1, ksize=3)
    return cv2.magnitude(gx, gy)


def _is_ghost(region: np.ndarray, edges_now: np.ndarray, edges_then: np.ndarray) -> bool:
    """Abandoned or removed? An object put down has its outline in the current picture; a hole left by one taken
    away has it in the old picture (the standard test of left-object analytics)."""
    r = region.astype(np.uint8)
    ring = (cv2.dilate(r, np.ones((3, 3), np.uint8)) - cv2.erode(r, np.ones((3, 3), np.uint8))).astype(bool)
    if not ring.any():
        return False
    return float(edges_now[ring].mean()) < float(edges_then[ring].mean())

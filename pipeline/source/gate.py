"""The change gate: has the picture inside a camera's zones changed since the detector last ran on it?

Most of a night camera's frames show an empty street. Comparing a small blurred grayscale copy (160 px on the long
side by default) costs well under a millisecond; detecting costs tens. Downscaling by area averages sensor noise
away, the blur takes what is left, and matching the copy's brightness (mean and spread inside the zones) to the
reference's before comparing cancels the slow drift of a night picture (auto gain, street lights warming up). A
frame is "changed" when enough zone pixels differ by more than a threshold; the periodic refresh
(`GateConfig.refresh_s`) catches what the threshold misses.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ..config import CameraConfig, GateConfig, RulesConfig
from ..rules.registry import zone_kind

_ZONE_MARGIN = 0.08  # of the copy's long side: an object standing on a zone's edge changes pixels beside it


def zone_mask(camera: CameraConfig | None, width: int, height: int, size: tuple[int, int]) -> np.ndarray:
    """Pixels of a `size` (w, h) copy of a `width` x `height` frame that the gate watches: around the camera's
    zones (all of the frame when it has none, or a zone whose rule looks outside it: vehicles parked outside
    every bay), never an ignore zone (a mask)."""
    w, h = size
    sx, sy = w / width, h / height
    zones = camera.zones if camera else ()
    watched = [z for z in zones if not zone_kind(z.kind).mask]
    ignored = [z for z in zones if zone_kind(z.kind).mask]

    def poly(z) -> np.ndarray:
        pts = z.pixel_polygon(width, height, camera.resolution)
        return np.array([[round(x * sx), round(y * sy)] for x, y in pts], np.int32)

    if not watched or any(zone_kind(z.kind).outside for z in watched):
        mask = np.full((h, w), 255, np.uint8)
    else:
        mask = np.zeros((h, w), np.uint8)
        for z in watched:
            cv2.fillPoly(mask, [poly(z)], 255)
        r = max(1, round(_ZONE_MARGIN * max(w, h)))
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    for z in ignored:
        cv2.fillPoly(mask, [poly(z)], 0)
    if not mask.any():  # zones too thin to cover a pixel of the copy: watch all of it rather than nothing
        mask[:] = 255
    return mask > 0


def longest_stride_s(gate: GateConfig, camera: CameraConfig | None, rules: RulesConfig | None) -> float:
    """How far ahead the job may step: the configured bound, and at most a quarter of the shortest dwell time of
    any enabled rule (per-zone overrides included), so a violation can never begin and end inside one step."""
    dwells = []
    if rules is not None:
        for t in rules.types():
            r = rules.rule(t)
            if r.enabled:
                dwells.append(r.min_dwell_s)
                for z in camera.zones if camera else ():
                    o = z.overrides.get(t)
                    if o is not None and o.min_dwell_s is not None:
                        dwells.append(o.min_dwell_s)
    return min([gate.max_stride_s, gate.refresh_s, *(d / 4 for d in dwells)])


class ChangeGate:
    """Compares frames of one camera at one frame size against the last frame the detector ran on.

    >>> gate = ChangeGate(camera.gate, camera, 1920, 1080)
    >>> small = gate.thumb(gray)          # full-size luma (or BGR) in, the small copy out
    >>> if gate.reference is None or gate.changed(small): detect(...); gate.remember(small, t)
    """

    def __init__(self, cfg: GateConfig, camera: CameraConfig | None, width: int, height: int) -> None:
        self.cfg = cfg
        scale = min(1.0, cfg.size / max(width, height))
        self.size = (max(1, round(width * scale)), max(1, round(height * scale)))
        self.full = (width, height)
        self.mask = zone_mask(camera, width, height, self.size)
        self.min_changed = max(1, math.ceil(cfg.min_changed_fraction * int(self.mask.sum())))
        self.reference: np.ndarray | None = None
        self.reference_t: float | None = None
        self._ref_stats: tuple[float, float] = (0.0, 1.0)

    def thumb(self, image: np.ndarray) -> np.ndarray:
        """The small blurred grayscale copy of a full-size frame (luma, or BGR)."""
        if image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        small = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA).astype(np.float32)
        if self.cfg.blur_sigma > 0:
            small = cv2.GaussianBlur(small, (0, 0), self.cfg.blur_sigma)
        return small

    def _stats(self, small: np.ndarray) -> tuple[float, float]:
        v = small[self.mask]
        return float(v.mean()), max(float(v.std()), 1.0)

    def changed_pixels(self, small: np.ndarray) -> int:
        """Zone pixels of `small` that differ from the reference once brightness is matched."""
        if self.reference is None:
            raise ValueError("the gate has no reference frame yet")
        mean, std = self._stats(small)
        ref_mean, ref_std = self._ref_stats
        gain = min(max(ref_std / std, 0.5), 2.0)
        matched = (small - mean) * gain + ref_mean
        return int(np.count_nonzero((np.abs(matched - self.reference) > self.cfg.pixel_threshold) & self.mask))

    def changed(self, small: np.ndarray) -> bool:
        return self.changed_pixels(small) >= self.min_changed

    def due(self, t: float) -> bool:
        """The refresh is due at video time `t` (seconds)."""
        return self.reference_t is None or t - self.reference_t >= self.cfg.refresh_s - 1e-6

    def remember(self, small: np.ndarray, t: float) -> None:
        """`small` (at video time `t`) is the frame the detector just ran on: the new reference."""
        self.reference, self.reference_t = small, t
        self._ref_stats = self._stats(small)

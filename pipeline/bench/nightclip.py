"""Synthetic night recordings for benchmarks and tests: a static infrared-like street with sensor noise and slow
brightness drift, and real object crops that appear and disappear, encoded as H.264 with a fixed GOP as an NVR
writes it.

The picture is composed once per set of objects present (the scene is static between events); each frame then
only applies the drift (gain and offset) and a sensor-noise field, so a 30-minute 1080p clip costs the encoder's
time, not numpy's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np


@dataclass(frozen=True)
class Planted:
    """A grayscale crop standing on the street from `appear_s` to `vanish_s`; `at` is its top-left corner."""

    name: str
    patch: np.ndarray  # uint8 gray
    at: tuple[int, int]
    appear_s: float
    vanish_s: float

    @property
    def box(self) -> tuple[int, int, int, int]:
        x, y = self.at
        return (x, y, x + self.patch.shape[1], y + self.patch.shape[0])


@dataclass(frozen=True)
class NightLook:
    """How the night picture misbehaves."""

    noise_sigma: float = 6.0  # gray levels, per pixel and frame
    gain_drift: float = 0.12  # relative amplitude of the slow gain change (auto exposure)
    offset_drift: float = 8.0  # gray levels of slow offset drift
    drift_period_s: float = 600.0


def night_gray(image_bgr: np.ndarray, gain: float = 0.45, offset: float = 12.0) -> np.ndarray:
    """An infrared-like night version of a daylight picture: gray, dark, a little soft."""
    gray = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY) if image_bgr.ndim == 3 else image_bgr
    return cv2.GaussianBlur(cv2.convertScaleAbs(gray, alpha=gain, beta=offset), (0, 0), 0.8)


def _feather(patch: np.ndarray) -> np.ndarray:
    alpha = np.ones(patch.shape[:2], np.float32)
    edge = max(2, min(patch.shape[:2]) // 12)
    inner = alpha[edge:-edge, edge:-edge]
    alpha = cv2.copyMakeBorder(inner, edge, edge, edge, edge, cv2.BORDER_CONSTANT, value=0)
    return cv2.GaussianBlur(alpha, (0, 0), edge / 2)


def compose(background: np.ndarray, objects: list[Planted]) -> np.ndarray:
    out = background.astype(np.float32)
    for o in objects:
        x1, y1, x2, y2 = o.box
        a = _feather(o.patch)
        out[y1:y2, x1:x2] = out[y1:y2, x1:x2] * (1 - a) + o.patch.astype(np.float32) * a
    return np.clip(out, 0, 255).astype(np.uint8)


def write_night_clip(
    path: Path, background: np.ndarray, planted: list[Planted], seconds: float, fps: int = 25, gop: int = 50,
    look: NightLook = NightLook(), seed: int = 0, bitrate: int = 3_000_000, preset: str = "superfast", progress=None,
) -> Path:
    """Encode the clip to `path` (H.264, yuv420p, fixed GOP, no B-frames, as street cameras do). `background`
    is the night picture (uint8 gray, even width and height); `progress(done, total)` is called now and then."""
    import av

    h, w = background.shape
    rng = np.random.default_rng(seed)
    bank = [np.clip(rng.normal(128, look.noise_sigma, (h, w)), 0, 255).astype(np.uint8) for _ in range(12)]
    chroma = np.full((h // 2, w), 128, np.uint8)
    scenes: dict[tuple[int, ...], np.ndarray] = {}
    total = int(round(seconds * fps))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part" + path.suffix)
    with av.open(str(tmp), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt, stream.bit_rate = w, h, "yuv420p", bitrate
        stream.options = {"preset": preset, "g": str(gop), "keyint_min": str(gop), "sc_threshold": "0", "bframes": "0", "maxrate": str(bitrate * 4 // 3), "bufsize": str(bitrate * 3)}
        for i in range(total):
            t = i / fps
            key = tuple(k for k, o in enumerate(planted) if o.appear_s <= t < o.vanish_s)
            if key not in scenes:
                scenes[key] = compose(background, [planted[k] for k in key])
            phase = 2 * math.pi * t / look.drift_period_s
            gain = 1.0 + look.gain_drift * math.sin(phase)
            offset = look.offset_drift * math.sin(0.7 * phase + 1.0)
            y = cv2.addWeighted(scenes[key], gain, bank[int(rng.integers(len(bank)))], 1.0, offset - 128.0, dtype=cv2.CV_8U)
            frame = av.VideoFrame.from_ndarray(np.vstack([y, chroma]), format="yuv420p")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
            if progress and i % (fps * 60) == 0:
                progress(i, total)
        for packet in stream.encode():
            out.mux(packet)
    tmp.replace(path)
    return path

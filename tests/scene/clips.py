"""Generated camera clips for static-object tests: a real street photo as the empty scene, sensor noise and slow
brightness drift on every frame, and real crops put down, taken away or walked through on a timeline.

Each clip also says what a detector would find in each frame (`Clip.detections(t)`), so the engine can be run
without a model; `MarkedDetector` reads the same answer back from a frame, for runs through the change gate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import cv2
import numpy as np

from pipeline.detect import empty_detections
from pipeline.source.frames import Frame
from pipeline.source.images import load_image
from pipeline.paths import SHARED_DATA

from ..factory import TZ, dets

STREET = SHARED_DATA / "streets-in/images/IMG-20240615-WA0003_jpg.jpg"
CRATES = SHARED_DATA / "garbage-cn/val/images/000059_jpg.jpg"  # a heap of stuff: stands in for a stall's goods
START = datetime(2026, 11, 21, 10, 0, tzinfo=TZ)  # forbidden hours in the test camera's market zone
SIZE = (640, 480)
STALL_BOX = (440, 70, 560, 170)  # in the market zone (bottom centre inside), clear of the ignore mask
# Where a frame carries its scripted detections for `MarkedDetector`: inside the test camera's ignore mask
# (x 560-640, y 200-480), which neither the change gate nor the static scene looks at.
_MARK = (600, 440)


@dataclass
class Thing:
    """A real crop standing at `box` from `appear_s` to `vanish_s`, seen by the detector as `seen_as`."""

    image: np.ndarray
    box: tuple[int, int, int, int]
    appear_s: float
    vanish_s: float = 1e9
    seen_as: tuple[str, float] | None = None  # (class, score) the detector gives it; None: no class at all
    walk: tuple[float, float] = (0.0, 0.0)  # px/s

    def at(self, t: float) -> tuple[int, int, int, int] | None:
        if not self.appear_s <= t < self.vanish_s:
            return None
        dx, dy = (round(v * (t - self.appear_s)) for v in self.walk)
        x1, y1, x2, y2 = self.box
        return (x1 + dx, y1 + dy, x2 + dx, y2 + dy)


@dataclass
class Clip:
    things: list[Thing] = field(default_factory=list)
    noise: float = 3.0
    drift: float = 0.15  # peak relative brightness change over the clip (auto gain, dusk)
    shift_at: float | None = None  # the camera moves (pans by 40 px) from here on
    dark: tuple[float, float] | None = None  # the picture goes black
    frozen: tuple[float, float] | None = None  # the stream repeats one picture
    corrupt_at: tuple[float, ...] = ()  # a frame whose lower half is decoder grey
    seed: int = 0
    _street: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._street = cv2.resize(load_image(STREET), SIZE, interpolation=cv2.INTER_AREA).astype(np.float32)
        self._frozen_image: np.ndarray | None = None
        rng = np.random.default_rng(self.seed)  # a few noise fields, cycled: every frame differs from the last
        self._noise = [rng.normal(0, self.noise, (SIZE[1], SIZE[0], 3)).astype(np.float32) for _ in range(7)]

    def image(self, t: float) -> np.ndarray:
        if self.frozen and self.frozen[0] <= t < self.frozen[1] and self._frozen_image is not None:
            return self._frozen_image.copy()
        if self.dark and self.dark[0] <= t < self.dark[1]:
            return np.full((SIZE[1], SIZE[0], 3), 2, np.uint8)
        out = self._street.copy()
        if self.shift_at is not None and t >= self.shift_at:
            out = np.roll(out, 40, axis=1)
        for thing in self.things:
            box = thing.at(t)
            if box is not None:
                x1, y1, x2, y2 = box
                out[y1:y2, x1:x2] = cv2.resize(thing.image, (x2 - x1, y2 - y1), interpolation=cv2.INTER_AREA)
        out = out * (1.0 + self.drift * np.sin(t / 400.0)) + self._noise[int(t * 10) % len(self._noise)]
        if t in self.corrupt_at:
            out[SIZE[1] // 2 :] = 128
        image = np.clip(out, 0, 255).astype(np.uint8)
        self._frozen_image = image
        return image

    def detections(self, t: float):
        found = [(thing.seen_as[0], thing.at(t), thing.seen_as[1]) for thing in self.things if thing.seen_as and thing.at(t)]
        return dets(*found) if found else empty_detections()

    def frames(self, seconds: float, step: float = 2.0):
        """(frame, detections) every `step` s, the detections marked into the frame for `MarkedDetector`."""
        for t in np.arange(0.0, seconds + 1e-9, step):
            image = self.image(float(t))
            yield Frame(mark(image, self._key(float(t))), START + timedelta(seconds=float(t)), "cam"), self.detections(float(t))

    def _key(self, t: float) -> int:
        key = 0
        for i, thing in enumerate(self.things):
            if thing.seen_as and thing.at(t):
                key |= 1 << i
        return key


def mark(image: np.ndarray, key: int) -> np.ndarray:
    x, y = _MARK
    image[y : y + 8, x : x + 8] = key * 8 % 256
    return image


def crop(path=CRATES, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    image = load_image(path)
    if box is not None:
        x1, y1, x2, y2 = box
        image = image[y1:y2, x1:x2]
    return image


def person_crop() -> np.ndarray:
    """A dark upright figure with some texture: what matters here is that it differs from the street."""
    rng = np.random.default_rng(7)
    fig = np.full((120, 40, 3), 40, np.uint8)
    fig[:30, 8:32] = (90, 110, 160)
    fig += rng.integers(0, 20, fig.shape, dtype=np.uint8)
    return fig


class MarkedDetector:
    """Answers what a clip scripted for the frame (read back from its mark): for runs through the change gate,
    where the frames reach the detector in an order the test does not drive."""

    names = ("garbage", "garbage_bin", "overflow", "person", "bicycle", "car", "motorcycle", "truck", "bench", "umbrella", "chair", "dining table", "stall")

    def __init__(self, clip: Clip) -> None:
        self.clip = clip
        self.by_key: dict[int, Callable] = {}

    def detect(self, images):
        x, y = _MARK
        out = []
        for image in images:
            key = int(image[y + 4, x + 4, 0]) // 8
            found = [(t.seen_as[0], t.box, t.seen_as[1]) for i, t in enumerate(self.clip.things) if key >> i & 1 and t.walk == (0.0, 0.0)]
            out.append(dets(*found) if found else empty_detections())
        return out

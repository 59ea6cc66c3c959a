"""A busy street for benchmarks: a real 1080p daytime street where traffic (real cars, buses and two-wheelers with
their riders, cut from streets-in by their labels) passes through the watched zone all the time, so the change
gate finds every sample changed, and where real garbage piles stand on the pavement beside the traffic: the
planted violations (and one pile gone before the dwell time, which must give nothing).

Encoded as a street camera writes it (H.264, 25 fps, GOP 50, no B-frames), like `nightclip`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .nightclip import Planted, _feather

VEHICLE_CLASSES = (0, 1, 2)  # streets-in: bike, bus, car


@dataclass(frozen=True)
class Mover:
    """A crop crossing the frame from `x0` to `x1` (its left edge) between `enter_s` and `leave_s`, top at `y`."""

    patch: np.ndarray  # uint8 BGR
    alpha: np.ndarray  # float32, feathered edges
    y: int
    x0: float
    x1: float
    enter_s: float
    leave_s: float

    def x_at(self, t: float) -> int | None:
        if not self.enter_s <= t < self.leave_s:
            return None
        return round(self.x0 + (self.x1 - self.x0) * (t - self.enter_s) / (self.leave_s - self.enter_s))


def vehicle_crops(root: Path, limit: int = 40, height: int = 220) -> list[np.ndarray]:
    """Vehicles cut from streets-in photos by their labels (large, whole, not at the picture's edge), scaled to
    `height` pixels: the traffic."""
    from ..source.images import load_image

    out = []
    for label in sorted((root / "labels").glob("*.txt")):
        image_path = root / "images" / f"{label.stem}.jpg"
        if not image_path.is_file():
            continue
        rows = [r.split() for r in label.read_text().splitlines() if r.strip()]
        rows = [tuple(map(float, r[1:5])) for r in rows if int(r[0]) in VEHICLE_CLASSES]
        img = None
        for cx, cy, bw, bh in rows:
            if not (0.15 <= bw <= 0.6 and 0.15 <= bh <= 0.6 and bw / 2 < cx < 1 - bw / 2 and bh / 2 < cy < 1 - bh / 2):
                continue
            img = img if img is not None else load_image(image_path)
            ih, iw = img.shape[:2]
            crop = img[int((cy - bh / 2) * ih) : int((cy + bh / 2) * ih), int((cx - bw / 2) * iw) : int((cx + bw / 2) * iw)]
            scale = height / crop.shape[0]
            out.append(cv2.resize(crop, (max(40, round(crop.shape[1] * scale)), height), interpolation=cv2.INTER_AREA))
            if len(out) >= limit:
                return out
    return out


def traffic(crops: list[np.ndarray], seconds: float, width: int, lanes: tuple[int, ...], every_s: float = 1.2, seed: int = 0) -> list[Mover]:
    """Movers entering one after another (a new one every `every_s` on average, each taking 5-9 s to cross), in
    both directions on `lanes` (the top of each lane, in pixels): always several in the picture."""
    rng = np.random.default_rng(seed)
    out, t = [], -6.0  # already busy at the first frame
    while t < seconds:
        patch = crops[int(rng.integers(len(crops)))]
        lane = int(rng.integers(len(lanes)))
        w = patch.shape[1]
        x0, x1 = (-w, width) if lane % 2 == 0 else (width, -w)
        out.append(Mover(patch, _feather(patch)[..., None], lanes[lane], x0, x1, t, t + float(rng.uniform(5.0, 9.0))))
        t += float(rng.exponential(every_s))
    return out


def compose_busy(background: np.ndarray, planted: list[Planted], movers: list[Mover], t: float) -> np.ndarray:
    """The street at time `t`: the piles present then, and the traffic over them."""
    out = background.copy()
    for p in planted:
        if p.appear_s <= t < p.vanish_s:
            _paste(out, p.patch, _feather(p.patch)[..., None], *p.at)
    for m in movers:
        x = m.x_at(t)
        if x is not None:
            _paste(out, m.patch, m.alpha, x, m.y)
    return out


def _paste(out: np.ndarray, patch: np.ndarray, alpha: np.ndarray, x: int, y: int) -> None:
    h, w = patch.shape[:2]
    x1, y1, x2, y2 = max(0, x), max(0, y), min(out.shape[1], x + w), min(out.shape[0], y + h)
    if x2 <= x1 or y2 <= y1:
        return
    src = patch[y1 - y : y2 - y, x1 - x : x2 - x].astype(np.float32)
    a = alpha[y1 - y : y2 - y, x1 - x : x2 - x]
    region = out[y1:y2, x1:x2]
    region[:] = (region * (1 - a) + src * a).astype(np.uint8)


def write_busy_clip(
    path: Path, background: np.ndarray, planted: list[Planted], movers: list[Mover], seconds: float, fps: int = 25, gop: int = 50,
    bitrate: int = 6_000_000, preset: str = "ultrafast", progress=None,
) -> Path:
    """Encode the busy street to `path` (H.264, yuv420p, fixed GOP, no B-frames); `background` is BGR."""
    import av

    h, w = background.shape[:2]
    total = int(round(seconds * fps))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part" + path.suffix)
    with av.open(str(tmp), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt, stream.bit_rate = w, h, "yuv420p", bitrate
        stream.options = {"preset": preset, "g": str(gop), "keyint_min": str(gop), "sc_threshold": "0", "bframes": "0", "maxrate": str(bitrate * 4 // 3), "bufsize": str(bitrate * 3)}
        for i in range(total):
            frame = av.VideoFrame.from_ndarray(compose_busy(background, planted, movers, i / fps), format="bgr24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
            if progress and i % (fps * 60) == 0:
                progress(i, total)
        for packet in stream.encode():
            out.mux(packet)
    tmp.replace(path)
    return path

"""Rebuild the sample footage and patrol photos in this folder from ../shared (run from the repo root):

    .venv/bin/python datasets/samples/build.py

- footage/cam-lane/: the `garbage-pile` scenario rendered as a 15-minute H.264 clip, one frame per 2 s;
- footage/cam-walkway/: the first 30 s of OpenCV's vtest.avi walkway video, re-encoded to H.264;
- footage/cam-corner/: the `street-corner` scenario (a stall set up on the pavement, motorbikes parked along a
  no-parking kerb) rendered as a 20-minute clip with sensor noise, one frame per 2 s;
- footage/patrol/: five patrol photos with EXIF time and GPS written in (two of one pile, 35 minutes apart).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image

from pipeline.bench.scenarios import SHIPPED, Composer, load_scenarios

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1].parent / "shared" / "data"


def write_video(path: Path, frames, rate: Fraction, size: tuple[int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "28", "preset": "veryfast"}
        for img in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def lane() -> None:
    scenario = next(s for s in load_scenarios(SHIPPED) if s.name == "garbage-pile")
    composer = Composer(scenario, DATA)
    frames = (composer.frame(t) for t in range(0, int(scenario.duration_s) + 1, 2))
    write_video(HERE / "footage" / "cam-lane" / "lane_20261120_220000.mp4", frames, Fraction(1, 2), tuple(scenario.camera.resolution))


def corner() -> None:
    """Composed frames are pixel-identical while nothing moves, which a real camera's never are (and the static
    scene takes for a frozen stream): light sensor noise, fixed per frame, makes them a camera's."""
    scenario = next(s for s in load_scenarios(SHIPPED) if s.name == "street-corner")
    composer = Composer(scenario, DATA)

    def noisy(t: int):
        frame = composer.frame(t).astype(np.float32) + np.random.default_rng(t).normal(0, 2.0, (640, 640, 3))
        return np.clip(frame, 0, 255).astype(np.uint8)

    frames = (noisy(t) for t in range(0, int(scenario.duration_s) + 1, 2))
    write_video(HERE / "footage" / "cam-corner" / "corner_20261120_220000.mp4", frames, Fraction(1, 2), tuple(scenario.camera.resolution))


def walkway() -> None:
    with av.open(str(DATA / "video" / "vtest.avi")) as src:
        frames = [f.to_ndarray(format="bgr24") for _, f in zip(range(300), src.decode(video=0))]
    write_video(HERE / "footage" / "cam-walkway" / "walkway_20261120_221500.mp4", frames, Fraction(10, 1), (768, 576))


def _dms(deg: float) -> tuple:
    d = int(deg)
    m = int((deg - d) * 60)
    s = round(((deg - d) * 60 - m) * 60, 2)
    return (d, m, s)


PATROL = [  # (source, taken, lat, lon): the first two are the same pile, 8 m and 35 minutes apart
    ("garbage-cn/val/images/001523_jpg.jpg", "2026:11:20 21:05:00", 30.26105, 120.14610),
    ("garbage-cn/val/images/001523_jpg.jpg", "2026:11:20 21:40:00", 30.26112, 120.14608),
    ("garbage-cn/val/images/001635_jpg.jpg", "2026:11:20 21:20:00", 30.25420, 120.15890),
    ("garbage-cn/val/images/000059_jpg.jpg", "2026:11:20 21:50:00", 30.24800, 120.17300),
    ("streets-in/images/IMG20240615122000_jpg.jpg", "2026:11:20 22:05:00", 30.25000, 120.16000),
]


def patrol() -> None:
    folder = HERE / "footage" / "patrol"
    folder.mkdir(parents=True, exist_ok=True)
    for i, (src, taken, lat, lon) in enumerate(PATROL, 1):
        im = Image.open(DATA / src).convert("RGB")
        exif = Image.Exif()
        exif[0x0132] = taken
        exif.get_ifd(0x8769)[0x9003] = taken
        gps = exif.get_ifd(0x8825)
        gps[1], gps[2], gps[3], gps[4] = "N", _dms(lat), "E", _dms(lon)
        im.save(folder / f"patrol_{i:02d}.jpg", quality=88, exif=exif)


if __name__ == "__main__":
    lane()
    corner()
    walkway()
    patrol()
    for p in sorted(HERE.rglob("*")):
        if p.is_file() and p.suffix in (".mp4", ".jpg"):
            print(f"{p.relative_to(HERE)}  {p.stat().st_size / 1e6:.2f} MB")

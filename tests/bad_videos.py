"""Bad videos made on the spot (PyAV, tiny frames): what a night job meets on a real NVR export."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def tiny_video(path: Path, codec: str = "mpeg4", frames: int = 30, size: tuple[int, int] = (64, 48), fps: int = 10) -> Path:
    """A small real video: a grey ramp, `frames` frames at `fps`."""
    w, h = size
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height = w, h
        s.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        for i in range(frames):
            img = np.full((h, w, 3), (i * 8) % 256, np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def unknown_codec(path: Path) -> Path:
    """An AVI whose stream is tagged with a FourCC no ffmpeg decodes ('QQQQ'): the container opens, the codec is unknown."""
    src = tiny_video(path.with_name(path.stem + "-src.avi"), "mjpeg")
    data = src.read_bytes()
    src.unlink()
    assert data.count(b"MJPG") >= 1
    path.write_bytes(data.replace(b"MJPG", b"QQQQ"))
    return path


def truncated_avi(path: Path, size: tuple[int, int] = (64, 48)) -> Path:
    """An MJPEG AVI cut off at 60%: its first frames decode, then it ends early (the header still says how long it was)."""
    src = tiny_video(path.with_name(path.stem + "-src.avi"), "mjpeg", frames=40, size=size)
    data = src.read_bytes()
    src.unlink()
    path.write_bytes(data[: len(data) * 6 // 10])
    return path


def corrupt_middle(src: Path, path: Path, seed: int = 0) -> Path:
    """`src` with random bytes over the second quarter of its media data: the container is intact, the stream is not."""
    data = bytearray(src.read_bytes())
    start = data.find(b"mdat")
    a, z = start + len(data) // 4, start + len(data) // 2
    data[a:z] = np.random.default_rng(seed).integers(0, 256, z - a, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path

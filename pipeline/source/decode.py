"""Decode only what is needed: a video read as a grid of sample ticks (one every `every_s` seconds of video time),
each tick decoded by the cheapest way this file allows.

A night of 1080p at 25 fps sampled every 2 s keeps one frame in 50; decoding all 50 is where the night job spent
80% of its time. Per file, the reader probes the keyframe interval and picks among:

- `keyframes`: every tick lands on a keyframe (sampling interval a multiple of the GOP): the decoder skips every
  other frame (`skip_frame = "NONKEY"`) and reads on;
- `keyframe-seek`: the same, but seeks to each tick's keyframe (wins when ticks are several GOPs apart);
- `seek`: seek to the keyframe before each tick and decode forward to it (ticks not on keyframes, far apart);
- `decode`: decode everything and drop what is not a tick without converting it (dense sampling, or no index).

When more than one applies, a quick measurement on the file's first ticks decides. Any tick can also be asked for
out of order (`frame(i)`): the change gate jumps ahead on static scenes and steps back to find when a change
began; a request far enough ahead seeks instead of decoding the frames in between.

Frames keep their true presentation timestamps. A tick maps to the first frame at or after its grid time (within
half a frame), so every strategy gives the same frames at the same times.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

Strategy = Literal["keyframes", "keyframe-seek", "seek", "decode"]
STRATEGIES: tuple[str, ...] = ("keyframes", "keyframe-seek", "seek", "decode")
_PROBE_PACKETS = 1500  # enough for 4 keyframes of a 12 s GOP at 25 fps; a longer GOP counts as "no regular keyframes"
_MEASURE_TICKS = 3
# 8-bit pixel formats whose first plane is the luma itself
_LUMA_FIRST = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv411p", "yuv440p", "nv12", "nv21", "gray"})


class VideoError(ValueError):
    """A video that cannot be decoded (or stops decoding part-way); `frames_read` says how far it got."""

    def __init__(self, message: str, frames_read: int = 0) -> None:
        super().__init__(message)
        self.frames_read = frames_read


@dataclass(frozen=True)
class VideoProbe:
    """What the first packets of a file say about it."""

    fps: float
    origin_s: float  # presentation time of the first frame
    frames: int | None  # as the container declares it (an AVI header still says it after a cut)
    keyframe_s: float | None  # regular keyframe interval seen at the start; None when irregular or too long to see
    keyframes_from_origin: bool  # the first keyframe is the first frame (ticks from the origin can land on keyframes)
    width: int
    height: int


@dataclass
class Decoded:
    """One tick's frame, still in the decoder's format: converting a 1080p frame costs as much as gating it."""

    tick: int
    t: float  # presentation time, seconds
    frame: object  # av.VideoFrame

    def bgr(self) -> np.ndarray:
        return self.frame.to_ndarray(format="bgr24")

    def gray(self) -> np.ndarray:
        """Luma at full size: the Y plane itself for YUV formats (no conversion), else a converted copy."""
        f = self.frame
        if f.format.name in _LUMA_FIRST:
            plane = f.planes[0]
            return np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[: f.height, : f.width]
        return f.to_ndarray(format="gray")


def _open(path: Path):
    import av

    if not path.is_file():
        raise VideoError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: empty file (0 bytes)")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as e:
        raise VideoError(f"{path}: not a readable video ({e})") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: has no video stream")
    if container.streams.video[0].codec_context is None:  # the container names a codec this ffmpeg cannot decode
        container.close()
        raise VideoError(f"{path}: unknown video codec: no decoder for it in this ffmpeg build")
    return container


def probe(path: str | Path) -> VideoProbe:
    """Frame rate, start and keyframe interval, from the first packets (demuxed, not decoded)."""
    import av

    path = Path(path)
    with _open(path) as container:
        stream = container.streams.video[0]
        tb = float(stream.time_base)
        fps = float(stream.average_rate or stream.guessed_rate or 25)
        keys: list[float] = []
        first: float | None = None
        try:
            for n, packet in enumerate(container.demux(stream)):
                if n >= _PROBE_PACKETS or packet.size == 0:  # far enough, or the end
                    break
                if packet.pts is None:
                    continue
                t = packet.pts * tb
                first = t if first is None else min(first, t)
                if packet.is_keyframe:
                    keys.append(t)
                    if len(keys) >= 4:
                        break
        except av.error.FFmpegError:
            pass  # a broken file: the reader says so with the frame it stopped at
        gaps = np.diff(keys)
        regular = len(gaps) >= 1 and float(np.ptp(gaps)) <= 0.5 / fps
        origin = first if first is not None else float(stream.start_time or 0) * tb
        return VideoProbe(
            fps=fps,
            origin_s=origin,
            frames=stream.frames or None,
            keyframe_s=float(np.median(gaps)) if regular else None,
            keyframes_from_origin=bool(keys) and abs(keys[0] - origin) <= 0.5 / fps,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
        )


def candidates(p: VideoProbe, every_s: float) -> list[str]:
    """Strategies that give exactly the grid's frames for this file, cheapest-looking first."""
    tol = 0.5 / p.fps
    if p.keyframe_s is None:
        return ["decode"]
    k = p.keyframe_s
    ratio = every_s / k
    if p.keyframes_from_origin and ratio >= 1 - 1e-6 and abs(ratio - round(ratio)) * k <= tol:
        return ["keyframes", "keyframe-seek"]
    if every_s >= k / 2:
        return ["seek", "decode"]
    return ["decode"]


class VideoReader:
    """A video as sample ticks: tick `i` is the first frame at or after `origin + i * every_s`.

    >>> with VideoReader(path, every_s=2.0) as r:
    ...     d = r.frame(r.first_tick)   # Decoded, or None past the end
    ...     r.finish()                  # raises VideoError if the file was cut short
    """

    def __init__(self, path: str | Path, every_s: float = 2.0, start_s: float = 0.0, strategy: str = "auto", probed: VideoProbe | None = None) -> None:
        if every_s <= 0:
            raise ValueError(f"every_s must be > 0, got {every_s}")
        self.path = Path(path)
        self.every_s = float(every_s)
        self.info = probed or probe(self.path)
        self.tol = 0.5 / self.info.fps
        self.first_tick = max(0, math.ceil((start_s - self.info.origin_s) / self.every_s - 1e-9))
        if strategy == "auto":
            strategy = choose(self.path, self.every_s, self.info, self.first_tick)
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown decode strategy '{strategy}' (one of {', '.join(STRATEGIES)})")
        self.strategy = strategy
        self.container = _open(self.path)
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO" if strategy == "decode" else "SLICE"
        self._keyframes_only = strategy.startswith("keyframe")
        if self._keyframes_only:
            self.stream.codec_context.skip_frame = "NONKEY"
        k = self.info.keyframe_s
        # how far ahead a request must be to seek rather than read on
        if k is None:
            self.seek_gap = math.inf
        elif strategy in ("seek", "keyframe-seek"):
            self.seek_gap = 0.0
        else:
            self.seek_gap = 2 * k
        self._frames = None  # the decode iterator, recreated after each seek
        self._pending: object | None = None  # a decoded frame read past the last request
        self._pos: float | None = None  # time of the last frame handed out or passed
        self._eof = False
        self.decoded = 0  # frames the decoder produced
        self.seeks = 0
        self.last_packet_s: float | None = None  # furthest packet time read: how far the file was readable
        self._packets_read = 0
        self._n_frames = 0

    # -- ticks -----------------------------------------------------------------------------------------------

    def grid(self, i: int) -> float:
        return self.info.origin_s + i * self.every_s

    def tick_time(self, i: int) -> float:
        """The presentation time of tick `i`'s frame at the file's frame rate (for ticks not decoded)."""
        fps, origin = self.info.fps, self.info.origin_s
        k = max(0, math.ceil((self.grid(i) - self.tol - origin) * fps - 1e-9))
        return origin + k / fps

    def next_tick(self, i: int, t: float) -> int:
        """The tick after `i` whose frame is a later one than the frame at `t` (a low frame rate repeats none)."""
        return max(i + 1, math.floor((t + self.tol - self.info.origin_s) / self.every_s + 1e-9) + 1)

    # -- decoding --------------------------------------------------------------------------------------------

    def _frame_iter(self):
        tb = float(self.stream.time_base)
        for packet in self.container.demux(self.stream):
            if packet.pts is not None:
                pt = packet.pts * tb
                self.last_packet_s = pt if self.last_packet_s is None else max(self.last_packet_s, pt)
            self._packets_read += 1
            frames = packet.decode()
            if not frames and self._keyframes_only and packet.is_keyframe and packet.size:
                # The decoder holds a frame back for reordering until the next packet it decodes: with every
                # other frame skipped that is the next keyframe, a whole GOP of reading later. Keyframes alone
                # need no reordering: drain it now (and reset, as a seek would).
                frames = self.stream.codec_context.decode(None)
                self.stream.codec_context.flush_buffers()
                for f in frames:
                    f.pts, f.time_base = packet.pts, packet.time_base
            for frame in frames:
                self.decoded += 1
                yield frame

    def _seek(self, target: float) -> None:
        import av

        try:
            self.container.seek(int((target + self.tol) / float(self.stream.time_base)), stream=self.stream, backward=True)
        except av.error.FFmpegError as e:
            raise VideoError(f"{self.path}: seeking to {target:.2f}s failed ({e})", self.frames_read) from None
        self.seeks += 1
        self._frames, self._pending, self._pos, self._eof = self._frame_iter(), None, None, False

    def frame(self, i: int) -> Decoded | None:
        """Tick `i`'s frame, or None when the file ends before it."""
        import av

        target = self.grid(i)
        if self._frames is None:
            self._frames = self._frame_iter()
            if target - self.info.origin_s > self.seek_gap:
                self._seek(target)
        elif self._pos is not None and (target - self.tol <= self._pos or target - self._pos > self.seek_gap):  # behind, or far ahead
            self._seek(target)
        elif self._eof:
            return None
        try:
            while True:
                if self._pending is not None:
                    f, self._pending = self._pending, None
                else:
                    f = next(self._frames, None)
                    if f is None:
                        self._eof = True
                        return None
                t = f.time if f.time is not None else self.info.origin_s + self._n_frames / self.info.fps
                self._n_frames += 1
                if t + self.tol < target:
                    self._pos = t
                    continue  # dropped: never converted
                if self._pos is not None and t + self.tol <= self._pos:
                    continue  # a frame before the last one handed out (decoder reorder after a seek)
                self._pos = t
                return Decoded(i, t, f)
        except av.error.FFmpegError as e:
            raise VideoError(f"{self.path}: decoding stopped after {self.frames_read} frames ({e})", self.frames_read) from None

    @property
    def frames_read(self) -> int:
        """How far into the file decoding got, in frames (its position, whichever frames were skipped)."""
        if self.last_packet_s is None:
            return 0
        return int(round((self.last_packet_s - self.info.origin_s) * self.info.fps)) + 1

    def finish(self) -> None:
        """After the last tick: a file that decoded nothing, or whose header promised more, is a `VideoError`."""
        if self.decoded == 0 and self.first_tick == 0:  # a resumed file may have nothing left after its last sample
            raise VideoError(f"{self.path}: no decodable frames")
        declared, read = self.info.frames, self.frames_read
        if declared and read < declared - 1:  # a cut-off AVI just stops; its header still says how long it was
            raise VideoError(f"{self.path}: truncated, decoded {read} of {declared} frames", read)

    def close(self) -> None:
        self.container.close()

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def choose(path: Path, every_s: float, info: VideoProbe, first_tick: int = 0) -> str:
    """The strategy for this file: the fastest on its first few ticks among those that apply.

    A candidate must also hand out exactly the grid's frames there: packet keyframe flags can lie (an AVI cut
    before its index flags every packet as a keyframe), and a decoder skipping "non-keyframes" would then return
    frames seconds late. `decode` is always right and is the fallback.
    """
    options = candidates(info, every_s)
    if options == ["decode"]:
        return "decode"
    timings: dict[str, float] = {}
    for name in options:
        try:
            with VideoReader(path, every_s, strategy=name, probed=info) as r:
                t0 = time.perf_counter()
                got, exact = 0, True
                for i in range(first_tick, first_tick + _MEASURE_TICKS):
                    d = r.frame(i)
                    if d is None:
                        break
                    d.gray()
                    got += 1
                    exact &= abs(d.t - r.tick_time(i)) <= r.tol
                if got and exact:
                    timings[name] = (time.perf_counter() - t0) / got
        except VideoError:
            continue
        if name.startswith("keyframe") and name in timings and "keyframes" in options and len(timings) == 2:
            break
    return min(timings, key=timings.get) if timings else "decode"

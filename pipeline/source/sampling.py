"""One camera file through decoding, the change gate and the detector: `sample_video` yields one (frame,
detections) per sampling tick, ready for `Intake.frame`.

The engine still sees every tick (tracking, dwell, incidents and auto-verification are unchanged), but on a
static scene most ticks are neither decoded nor detected:

- a tick whose picture did not change since the last detected one gets that frame's detections (and image);
- on a static scene the decoder steps ahead, doubling the step up to `gate.longest_stride_s`; when the frame at
  the end of a step shows a change, it bisects back to the first changed tick, so a violation's first-seen and
  last-seen times stay exact to the sampling interval;
- the detector runs at least every `GateConfig.refresh_s` of video, changed or not.

What a step can miss is a change that comes and goes within it (at most 30 s by default, a quarter of the shortest
dwell time of the rules): nothing that could have become a violation.
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import supervision as sv

from ..config import CameraConfig, GateConfig, RulesConfig
from .decode import Decoded, VideoReader
from ..detect import Detector
from ..detect.plan import camera_detector, frame_detector
from .frames import Frame
from .gate import ChangeGate, longest_stride_s
from .prefetch import prefetched

GATE_OFF = GateConfig(enabled=False)
_MAX_WAITING = 512  # ticks held back for a detector batch at most (bounded memory on a static night)


@dataclass
class SampleStats:
    """What sampling one file cost: the figures behind `streetorder bench batch`."""

    strategy: str = ""
    ticks: int = 0
    decoded: int = 0  # tick frames decoded (or composed)
    detected: int = 0  # frames the detector ran on
    reused: int = 0  # ticks that got the last detected frame's detections
    bisections: int = 0
    seconds: float = 0.0

    def add(self, other: "SampleStats") -> None:
        for f in dataclasses.fields(self):
            if f.name != "strategy":
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


class TickSource(Protocol):
    """Frames on a grid of sampling ticks (`decode.VideoReader`, or a composed scene)."""

    first_tick: int

    def frame(self, i: int) -> Decoded | None: ...
    def tick_time(self, i: int) -> float: ...
    def next_tick(self, i: int, t: float) -> int: ...


@dataclass
class ImageTick:
    """A tick of a scene built in memory, shaped like `decode.Decoded`."""

    tick: int
    t: float
    image: np.ndarray

    def bgr(self) -> np.ndarray:
        return self.image

    def gray(self) -> np.ndarray:
        return cv2.cvtColor(self.image, cv2.COLOR_BGR2GRAY)


class ImageTicks:
    """`count` ticks `every_s` apart, each image rendered on demand by `render(t)` (a scenario's composer)."""

    first_tick = 0

    def __init__(self, render: Callable[[float], np.ndarray], every_s: float, count: int) -> None:
        self.render, self.every_s, self.count = render, every_s, count

    def frame(self, i: int) -> ImageTick | None:
        return ImageTick(i, i * self.every_s, self.render(i * self.every_s)) if i < self.count else None

    def tick_time(self, i: int) -> float:
        return i * self.every_s

    def next_tick(self, i: int, t: float) -> int:
        return i + 1


@dataclass
class _Step:
    tick: int
    t: float
    decoded: Decoded | None  # None: reuse the last detected frame
    resume_s: float | None = None  # set where the planner is as at a fresh start: a resumed run starting here takes the same steps


def plan_ticks(source: TickSource, gate: ChangeGate | None, stride: int, stats: SampleStats) -> Iterator[_Step]:
    """Which ticks to detect and which to reuse, decoding as few as that needs. `stride`: the largest step, in
    ticks (1: every tick decoded and gated)."""
    i = source.first_tick
    cache: dict[int, tuple[Decoded, np.ndarray]] = {}

    def get(j: int) -> Decoded | None:
        d = source.frame(j)
        stats.decoded += d is not None
        return d

    def thumb(j: int) -> tuple[Decoded, np.ndarray] | None:
        if j not in cache:
            d = get(j)
            if d is None:
                return None
            cache[j] = (d, gate.thumb(d.gray()))
        return cache[j]

    grid = getattr(source, "grid", None)

    def fresh(j: int) -> float | None:
        return grid(j) if grid is not None else None

    if gate is None:
        while (d := get(i)) is not None:
            yield _Step(i, d.t, d, fresh(i))
            i = source.next_tick(i, d.t)
        return
    step = 1
    while True:
        for j in [j for j in cache if j < i]:
            del cache[j]
        if gate.reference is None:  # the first tick: always detected
            got = thumb(i)
            if got is None:
                return
            d, small = got
            gate.remember(small, d.t)
            yield _Step(i, d.t, d, fresh(i))
            i = source.next_tick(i, d.t)
            continue
        target = i + step - 1
        for j in range(i, target + 1):  # never step over a refresh
            if gate.due(source.tick_time(j)):
                target = j
                break
        got = thumb(target)
        if got is None:  # past the end: walk up to it one tick at a time
            if target == i:
                return
            step = 1
            continue
        d, small = got
        if gate.changed(small):
            lo, hi = i - 1, target  # lo: known unchanged (or the reference), hi: changed
            while hi - lo > 1:
                stats.bisections += 1
                mid = (lo + hi) // 2
                got_mid = thumb(mid)
                if got_mid is None or gate.changed(got_mid[1]):
                    hi = mid
                else:
                    lo = mid
            for j in range(i, hi):
                yield _Step(j, source.tick_time(j), None)
            d, small = cache[hi]
            gate.remember(small, d.t)
            yield _Step(hi, d.t, d, fresh(hi))  # reference hi, step 1: what a run starting at hi does
            i, step = source.next_tick(hi, d.t), 1
            continue
        for j in range(i, target):
            yield _Step(j, source.tick_time(j), None)
        if gate.due(d.t):
            gate.remember(small, d.t)
            yield _Step(target, d.t, d)
        else:
            yield _Step(target, d.t, None)
        i, step = source.next_tick(target, d.t), min(step * 2, stride)


@dataclass
class _Slot:
    detections: sv.Detections | None = None


class _Batches:
    """Detector batches, run in the caller's thread (`streams` 0) or on `streams` threads while the caller decodes
    the next frames: the results are the same either way, and handed on in tick order.

    At most `streams + 1` batches are in flight: one waiting for each stream and one more being filled, so the
    decoder never runs more than a batch ahead of the detector."""

    def __init__(self, detector: Detector, streams: int) -> None:
        self.detector, self.streams = detector, streams
        self._pool = ThreadPoolExecutor(streams, thread_name_prefix="streetorder-detect") if streams > 0 else None
        self._inflight: deque[tuple[Future, list[_Slot]]] = deque()

    def submit(self, images: list[np.ndarray], slots: list[_Slot]) -> None:
        if self._pool is None:
            self._fill(self.detector.detect(images), slots)
            return
        self._inflight.append((self._pool.submit(self.detector.detect, images), slots))
        self.settle(self.streams)

    def settle(self, keep: int = 0) -> None:
        """Collect finished batches; wait for the oldest while more than `keep` are in flight."""
        while self._inflight and (len(self._inflight) > keep or self._inflight[0][0].done()):
            future, slots = self._inflight.popleft()
            self._fill(future.result(), slots)

    @staticmethod
    def _fill(found: list, slots: list[_Slot]) -> None:
        for slot, dets in zip(slots, found):
            slot.detections = dets

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


def detect_steps(
    steps: Iterable[_Step], camera: CameraConfig, detector: Detector, start: datetime, source: str, batch: int, stats: SampleStats, streams: int = 0,
) -> Iterator[tuple[Frame, sv.Detections]]:
    """Detect the steps that need it, in batches (`detector`: the camera's own, as `camera_detector` made it),
    and hand every tick on in order, with its detections. `streams` > 0: the batches run on that many threads
    while the steps go on being decoded (`_Batches`); the batches, and so the detections, are the same.

    A batch is cut when it holds `batch` frames, or once `batch` ticks have passed since the last cut: on a
    static scene the detected frames are far apart, and every reused tick between them would otherwise wait
    (with the engine) until the batch filled up. The cuts depend on the steps alone, never on timing.

    When the steps fail part-way (a truncated video), what was already decoded is still handed on first.
    """
    waiting: deque[tuple[Frame, _Slot]] = deque()  # in tick order, not handed on yet
    to_run: list[tuple[Frame, _Slot]] = []
    held = 0  # ticks since the last flush: a batch is cut where the sequential run cut it
    ref: tuple[np.ndarray, _Slot] | None = None
    batches = _Batches(detector, streams)

    def flush() -> None:
        nonlocal held
        held = 0
        if to_run:
            stats.detected += len(to_run)
            batches.submit([f.image for f, _ in to_run], [s for _, s in to_run])
            to_run.clear()

    def ready(wait: bool = False) -> Iterator[tuple[Frame, sv.Detections]]:
        """The ticks at the head whose detections are in (`wait`: all of them, once every batch is in)."""
        batches.settle(0 if wait else batches.streams)
        out = []
        while waiting and waiting[0][1].detections is not None:
            f, s = waiting.popleft()
            out.append((f, dataclasses.replace(s.detections, data=dict(s.detections.data))))
        yield from out

    try:
        try:
            for s in steps:
                stats.ticks += 1
                held += 1
                at = start + timedelta(seconds=s.t)
                if s.decoded is not None:
                    image = s.decoded.bgr()
                    slot = _Slot()
                    ref = (image, slot)
                    frame = Frame(image, at, camera.id, source=f"{source}@{s.t:.2f}s", meta={"t": s.t} | ({"resume_s": s.resume_s} if s.resume_s is not None else {}))
                    to_run.append((frame, slot))
                    waiting.append((frame, slot))
                    if len(to_run) >= batch:
                        flush()
                else:
                    stats.reused += 1
                    waiting.append((Frame(ref[0], at, camera.id, source=f"{source}@{s.t:.2f}s", meta={"reused": True, "t": s.t}), ref[1]))
                    if not to_run or held >= batch:  # a part-filled batch goes rather than hold the engine back for more ticks
                        flush()
                yield from ready(wait=len(waiting) >= _MAX_WAITING)
        except Exception:
            flush()
            yield from ready(wait=True)
            raise
        flush()
        yield from ready(wait=True)
    finally:
        batches.close()


def gated(
    source: TickSource, camera: CameraConfig, detector: Detector, start: datetime, width: int, height: int, gate: GateConfig | None = None,
    rules: RulesConfig | None = None, every_s: float = 2.0, batch: int = 4, stats: SampleStats | None = None, name: str = "", streams: int = 0,
) -> Iterator[tuple[Frame, sv.Detections]]:
    """Any tick source through the gate and the detector (`sample_video` for files; scenarios use it on composed
    scenes). `detector` is used as given: wrap the shared model with `camera_detector` first. `streams`: detector
    batches on that many threads beside the decoding (`detect_steps`)."""
    cfg = gate if gate is not None else camera.gate
    stats = stats if stats is not None else SampleStats()
    change = ChangeGate(cfg, camera, width, height) if cfg.enabled else None
    stride = max(1, int(longest_stride_s(cfg, camera, rules) / every_s + 1e-9)) if change else 1
    yield from detect_steps(plan_ticks(source, change, stride, stats), camera, detector, start, name, batch, stats, streams)


def sample_video(
    path: str | Path, start: datetime, camera: CameraConfig, detector: Detector, every_s: float = 2.0, gate: GateConfig | None = None,
    start_s: float = 0.0, *, rules: RulesConfig | None = None, batch: int = 4, stats: SampleStats | None = None, strategy: str = "auto",
    prefetch: int = 0, streams: int = 0,
) -> Iterator[tuple[Frame, sv.Detections]]:
    """One video of `camera`, from `start_s` seconds of video time on, as (frame, detections) per sampling tick.

    `start` is when the recording began (frame times are `start` + presentation time). `gate`: the camera's
    own (`camera.gate`) unless given; `GATE_OFF` runs the detector on every tick. `rules` bound the step ahead to a
    quarter of their shortest dwell time. A truncated or corrupt file raises `VideoError` after every tick it
    did decode has been handed on. `stats`, if given, is filled in as the file is read.

    `prefetch`: decoding, gating and detecting run in a thread ahead of the caller, with at most this many
    frames of their own picture waiting (`prefetch.prefetched`; the night job prefetches each file itself);
    0 (the default) runs everything in the caller's thread.

    `streams`: the detector's batches run on that many threads of their own while the next ticks are decoded
    and gated (the night job: `NightSettings.streams`); 0 runs them where the decoding runs. The detections are
    the same either way.
    """
    stats = stats if stats is not None else SampleStats()
    ticks = _sample(Path(path), start, camera, detector, every_s, gate, start_s, rules, batch, stats, strategy, streams)
    return prefetched(ticks, depth=prefetch, name="streetorder-sample") if prefetch > 0 else ticks


def _sample(path: Path, start, camera, detector, every_s, gate, start_s, rules, batch, stats, strategy, streams=0) -> Iterator[tuple[Frame, sv.Detections]]:
    t0 = time.perf_counter()
    try:
        with VideoReader(path, every_s, start_s, strategy) as reader:
            stats.strategy = reader.strategy
            gate = gate if gate is not None else camera.gate
            if reader.info.fps * every_s < 1 - 1e-6:  # fewer frames than ticks: no grid to step along, gate tick by tick
                gate = gate.model_copy(update={"max_stride_s": 0.0})
            w, h = reader.info.width, reader.info.height
            yield from gated(reader, camera, camera_detector(detector, camera, w, h), start, w, h, gate, rules, every_s, batch, stats, str(path), streams)
            reader.finish()
    finally:
        stats.seconds += time.perf_counter() - t0


def _detect(frames: list[Frame], detector: Detector, camera: CameraConfig | None) -> list:
    """One batch of one camera's frames, each through the detector its camera asks for (`frame_detector`:
    the same one unless the camera slices; frames of one size share a call)."""
    if camera is None:
        return detector.detect([f.image for f in frames])
    out: list = [None] * len(frames)
    by_size: dict[tuple[int, int], list[int]] = {}
    for i, f in enumerate(frames):
        by_size.setdefault(f.image.shape[:2], []).append(i)
    for idx in by_size.values():
        for i, d in zip(idx, frame_detector(detector, camera, frames[idx[0]].image).detect([frames[i].image for i in idx])):
            out[i] = d
    return out


def detect_in_batches(frames: Iterable[Frame], detector: Detector, size: int, camera: CameraConfig | None = None) -> Iterator[tuple[Frame, object]]:
    """Detect in batches (faster on every backend), hand frames on one by one, in order.

    When the source fails part-way (a truncated video), the frames already decoded are still handed on first.
    """
    buf: list[Frame] = []
    try:
        for f in frames:
            buf.append(f)
            if len(buf) == size:
                batch, buf = buf, []
                yield from zip(batch, _detect(batch, detector, camera))
    except Exception:
        if buf:
            yield from zip(buf, _detect(buf, detector, camera))
        raise
    if buf:
        yield from zip(buf, _detect(buf, detector, camera))

"""The worker side: one unit through its own engine, as a stream of messages for the ledger writer.

The same code runs in the parent (`--workers 1`), in a worker process, or in a Ray actor. It never touches the
ledger: evidence stays in memory (shipped as bytes), and progress is only *proposed* (a `Checkpoint`); the
writer records it with the cases. Decoding and detection of a source run in a thread ahead of the engine.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

from ..config import StreetOrderConfig
from ..detect.streams import choose_parallelism
from ..engine import Engine, FrameResult
from ..frame_step import FrameStep
from ..samples.frame_pool import FramePool
from ..source.frames import Frame, VideoError, image_frames
from ..source.images import ImageError, load_image
from ..source.prefetch import prefetched
from ..source.sampling import GATE_OFF, detect_in_batches, sample_video
from .messages import Checkpoint, FrameOut, Message, Problem, UnitDone, UnitFailed
from .units import Counts, Job, NightSettings, Source, Unit

class _SourceRun:
    """One source being run: what its checkpoints carry (counts since the last one, how it ended)."""

    def __init__(self, step: FrameStep, unit: Unit, item: int, src: Source) -> None:
        self.step, self.unit, self.item, self.src = step, unit, item, src
        self.counts = Counts()
        self.status, self.error, self.frames_read = "done", None, None
        self.used = 0
        self.seen: tuple | None = None
        self.read: list[str] = []

    def saw(self, frame: Frame, image: bool = False) -> None:
        self.used += 1
        self.seen = (min(self.seen[0], frame.at), max(self.seen[1], frame.at)) if self.seen else (frame.at, frame.at)
        if image:
            self.read.append(frame.source)

    def checkpoint(self, position: float, status: str | None = None) -> Checkpoint:
        out = Checkpoint(
            self.unit.id, self.item, self.src.key, self.src.fingerprint, status or self.status, position, self.counts, self.step.engine.snapshot(),
            self.error, self.frames_read, self.used, self.seen, tuple(self.read), self.src.kind,
        )
        self.counts, self.seen, self.read = Counts(), None, []
        return out


class UnitRunner:
    """Runs units with one detector (loaded on first use, once per worker)."""

    def __init__(self, config: StreetOrderConfig, settings: NightSettings, detector=None) -> None:
        self.config = config
        self.settings = settings
        self._detector = detector
        self.pool = FramePool.from_env()  # frames for `samples select`, offered by the per-frame step as live

    @property
    def detector(self):
        if self._detector is None:
            from ..detect import DetectorSettings
            from ..detect.cascade import load_cue_cascade

            s = self.settings
            self._detector = load_cue_cascade(s.model, backend=s.backend, settings=DetectorSettings(conf=s.conf), threads=s.threads)
        return self._detector

    def run(self, job: Job) -> Iterator[Message]:
        """Every message of the unit, ending with `UnitDone` (or `UnitFailed` on an unexpected error)."""
        unit, resume = job.unit, job.resume
        try:
            sink: dict[str, bytes] = {}
            step = FrameStep(Engine(self.config, detector=self.detector, evidence_sink=sink), self.pool)
            first = 0
            if resume is not None:
                if resume.state is not None:
                    step.engine.restore(resume.state)
                first = resume.item
            for i in range(first, len(unit.sources)):
                position = resume.position if resume is not None and i == resume.item else 0.0
                yield from self._source(step, sink, unit, i, position, last=i == len(unit.sources) - 1)
            yield UnitDone(unit.id)
        except Exception:
            yield UnitFailed(unit.id, traceback.format_exc(limit=8))

    # -- one source ------------------------------------------------------------------------------------------

    def _source(self, step: FrameStep, sink: dict, unit: Unit, item: int, position: float, last: bool) -> Iterator[Message]:
        """One source's messages: its frames' reports and views, a `Checkpoint` every `checkpoint_s` of footage,
        and a last one when it is done (or failed), after the unit's open incidents when it is the unit's last."""
        src = unit.sources[item]
        run = _SourceRun(step, unit, item, src)
        walk = {"video": self._video_source, "stills": self._stills_source, "photos": self._photos_source}[src.kind]
        end = yield from walk(run, sink, position)
        if last:  # open incidents reported as they stand, in the unit's last record: a resumed run has nothing left
            reports = step.engine.flush()
            if reports:
                yield FrameOut(unit.id, src.key, reports, _drain(sink))
        yield run.checkpoint(end)

    def _video_source(self, run: _SourceRun, sink: dict, position: float) -> Iterator[Message]:
        mark, due = position, False
        try:
            for frame, dets in prefetched(self._video(run.src, run.unit.id, position)):
                # A progress record only before a frame where the sampler is as at a fresh start (`resume_s`: the
                # change gate's first or changed frame), so a run resumed there samples, gates and detects as an
                # uninterrupted one would: the same cases. A static scene therefore records less often.
                if due and frame.meta.get("resume_s") is not None:
                    mark, due = position, False
                    yield run.checkpoint(frame.meta["resume_s"], "partial")
                run.saw(frame)
                out = self._frame(run.step, sink, run.unit, frame, dets, run.counts)
                if out is not None:
                    yield out
                t = frame.meta.get("t", (frame.at - run.src.start).total_seconds())
                position = t + self.settings.every_s  # the next sample an uninterrupted run would take
                due = due or position - mark >= self.settings.checkpoint_s
        except VideoError as e:
            run.status, run.error, run.frames_read = "failed", str(e), e.frames_read
        return position

    def _stills_source(self, run: _SourceRun, sink: dict, position: float) -> Iterator[Message]:
        camera = self.config.camera(run.unit.id)
        done, problems = int(position), []

        def readable() -> Iterator[Frame]:
            images = image_frames([Path(p) for p in run.src.images], run.unit.id, ZoneInfo(camera.timezone), skip=done)
            for k, got in enumerate(images, start=done):
                if isinstance(got, ImageError):
                    problems.append(Problem(run.unit.id, str(got).split(":")[0], str(got)))
                else:
                    got.meta["index"] = k
                    yield got

        since = None
        for frame, dets in prefetched(detect_in_batches(readable(), self.detector, self.settings.batch, camera)):
            while problems:
                yield problems.pop(0)
            run.saw(frame, image=True)
            out = self._frame(run.step, sink, run.unit, frame, dets, run.counts)
            if out is not None:
                yield out
            since = since or frame.at
            if (frame.at - since).total_seconds() >= self.settings.checkpoint_s:
                since = None
                yield run.checkpoint(frame.meta["index"] + 1, "partial")
        yield from problems
        return len(run.src.images)

    def _photos_source(self, run: _SourceRun, sink: dict, position: float) -> Iterator[Message]:
        """Patrol photos, in capture order (the engine detects them itself: no per-camera plan)."""
        since = None
        for k in range(int(position), len(run.src.photos)):
            at, path, gps = run.src.photos[k]
            try:
                frame = Frame(load_image(Path(path)), at, None, gps, source=path, meta={"model": self.settings.model_name})
                result = run.step.engine.process_photo(frame)
            except (ImageError, ValueError) as e:
                yield Problem(run.unit.id, path, str(e))
                continue
            run.step.offer(frame, result)  # `step.photo`, split: a photo the engine took is never reported as a problem
            run.saw(frame, image=True)
            run.counts.photos += 1
            _count(run.counts, result)
            if result.reports:
                yield FrameOut(run.unit.id, path, result.reports, _drain(sink))
            since = since or at
            if (at - since).total_seconds() >= self.settings.checkpoint_s:
                since = None
                yield run.checkpoint(k + 1, "partial")
        return len(run.src.photos)

    def _video(self, src: Source, camera_id: str, start_s: float) -> Iterator[tuple[Frame, object]]:
        """One video's (frame, detections) from video time `start_s` on (a resumed file), as `sample_video` decodes,
        gates and detects it; `--no-gate` runs the detector on every sampled frame."""
        return sample_video(
            Path(src.key), src.start, self.config.camera(camera_id), self.detector, self.settings.every_s, None if self.settings.gate else GATE_OFF, start_s,
            rules=self.config.rules, batch=self.settings.batch, streams=self.streams,
        )

    @property
    def streams(self) -> int:
        """Detector streams beside the decoding (`run_batch` resolved `auto` already; a runner made directly
        resolves it from this process's cores)."""
        s = self.settings.streams
        return s if isinstance(s, int) else choose_parallelism(s, threads=self.settings.threads).streams

    def _frame(self, step: FrameStep, sink: dict, unit: Unit, frame: Frame, dets, counts: Counts) -> FrameOut | None:
        frame.meta.setdefault("model", self.settings.model_name)
        result = step.frame(frame, dets)
        counts.frames += 1
        _count(counts, result)
        verify = step.verify_input(frame, result) if unit.watched else None  # the after-image only on a camera with cases to re-check
        if result.reports or verify is not None:
            return FrameOut(unit.id, frame.source, result.reports, _drain(sink), verify)
        return None


def _count(counts: Counts, result: FrameResult) -> None:
    counts.violations += len(result.violations)
    counts.incidents_opened += len(result.opened)
    counts.incidents_ended += len(result.ended)


def _drain(sink: dict[str, bytes]) -> dict[str, bytes]:
    out = dict(sink)
    sink.clear()
    return out


__all__ = ["UnitRunner"]

"""The per-frame step: one frame or patrol photo through the engine, with what goes with it wherever it runs.

Live (`live.intake.Intake`, under the service) and the night job (`night.worker`) both call `FrameStep`, so the step
is written once: the engine sees the frame, the frame is offered to the frame pool (for `samples select`), and a
camera frame gives what auto-verification needs (its local time, what is present, the privacy-blurred
after-image). The step touches neither the ledger nor HTTP: a camera's state is its engine's (`Engine.snapshot`
/ `restore`), so the step runs wherever that engine does, and the caller takes the results to the ledger (in the
same call live, through the ledger writer at night).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import supervision as sv

from .domain import Location, local_time
from .engine import Engine, FrameResult
from .evidence import encode_jpeg, privacy_blur
from .samples.frame_pool import FramePool
from .source.frames import Frame


@dataclass(frozen=True)
class VerifyInput:
    """What auto-verification needs from one camera frame (it runs where the ledger is written)."""

    camera_id: str
    at: datetime
    present: list
    jpeg: bytes | None
    reused: bool = False  # the change gate found nothing changed since the last detected frame


class FrameStep:
    """An engine and the frame pool it feeds, fed one frame or photo at a time.

    >>> step = FrameStep(Engine(config, detector), FramePool.from_env())
    >>> result = step.frame(frame)  # the engine's FrameResult; the frame offered to the pool
    >>> v = step.verify_input(frame, result)  # where the ledger is: AutoVerifier.check(v.camera_id, v.at, v.present, v.jpeg)
    """

    def __init__(self, engine: Engine, pool: FramePool | None = None) -> None:
        self.engine = engine
        self.pool = pool  # None: no frames kept for labelling

    def frame(self, frame: Frame, detections: sv.Detections | None = None) -> FrameResult:
        """One frame of a fixed camera (`Engine.process`)."""
        result = self.engine.process(frame, detections)
        self.offer(frame, result)
        return result

    def photo(self, frame: Frame, location: Location | None = None, detections: sv.Detections | None = None) -> FrameResult:
        """One patrol photo (`Engine.process_photo`)."""
        result = self.engine.process_photo(frame, location, detections)
        self.offer(frame, result)
        return result

    def offer(self, frame: Frame, result: FrameResult) -> None:
        """Offer the frame for labelling, unless it is the change gate's reuse of the last detected frame: the
        pool was offered that picture already, and a static camera's repeats are what it must not fill up with."""
        if self.pool is not None and not frame.meta.get("reused"):
            raw = result.raw if result.raw is not None else result.detections
            self.pool.offer_frame(frame.image, raw, self.engine.config.evidence, frame.at, frame.camera_id, frame.source)

    def local_time(self, frame: Frame) -> datetime:
        """The frame's time in its camera's zone, as the ledger and the auto-verifier take it."""
        return local_time(frame.at, self.engine.config.camera(frame.camera_id).timezone)

    def after_image(self, frame: Frame, result: FrameResult) -> bytes:
        """The frame as a case's after-image shows it: privacy regions blurred, as JPEG. It costs an encode per
        frame, so it is asked for only on a camera with cases to re-check."""
        cfg = self.engine.config.evidence
        return encode_jpeg(privacy_blur(frame.image, result.raw, cfg), cfg.jpeg_quality)

    def verify_input(self, frame: Frame, result: FrameResult) -> VerifyInput:
        """Everything auto-verification needs from this camera frame, the after-image included."""
        return VerifyInput(frame.camera_id, self.local_time(frame), result.present, self.after_image(frame, result), bool(frame.meta.get("reused")))


__all__ = ["FrameStep", "VerifyInput"]

"""Build each camera's input shapes when a model loads, not on the camera's first frame.

OpenVINO compiles a model once per input shape (`OpenVinoDetector.warm`): 0.25-0.3 s a model on 2 cores, on the
detector's own thread. A loaded model has only the square, so a 16:9 or 4:3 camera's first frame, and every
request queued behind it, waited about 0.5 s for the street and the cue model to compile. `warm_up` builds, for
each camera's `resolution`, what the detector its frames take (`plan.camera_detector`: the cue model where its
zones need it, its slicing tiles) would build on that first frame: OpenVINO compiles each new shape and runs it
once on zeros (a compiled model's first inference pays a lazy set-up); onnxruntime builds nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from ..config import CameraConfig
from .base import Detector, warm
from .plan import camera_detector

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WarmUp:
    """What `warm_up` did: each distinct (camera detector, frame size) once."""

    plans: int
    cameras: int
    seconds: float
    left: int = 0  # plans not warmed because the time budget ran out: they build on their first frame
    failed: tuple[str, ...] = ()  # cameras whose shapes failed to build (logged; the model still serves)


def warm_up(base: Detector, cameras: Iterable[CameraConfig], budget_s: float = 30.0) -> WarmUp:
    """Build the input shapes each camera's frames will need from `base`. Cameras sharing a plan and a frame size
    share one build. No new build starts after `budget_s` (a city of many sliced cameras would otherwise hold a
    model's load for minutes); what is left builds on first sight, as without a warm-up."""
    start = time.perf_counter()
    done: dict[tuple[int, int, int], Detector] = {}  # holds each detector, so that no id is reused
    n = left = 0
    failed: list[str] = []
    for camera in cameras:
        n += 1
        width, height = camera.resolution
        try:
            detector = camera_detector(base, camera, width, height)
            key = (id(detector), width, height)
            if key in done:
                continue
            if time.perf_counter() - start > budget_s:
                left += 1
                continue
            done[key] = detector
            warm(detector, [(height, width)])
        except Exception as e:  # a shape the runtime cannot build fails on the camera's frames too: say so now
            log.warning("warm-up of camera %s (%dx%d) failed: %s: %s", camera.id, width, height, type(e).__name__, e)
            failed.append(camera.id)
    out = WarmUp(plans=len(done), cameras=n, seconds=round(time.perf_counter() - start, 3), left=left, failed=tuple(failed))
    if n:
        log.info("warm-up: %d plan(s) for %d camera(s) in %.2f s%s", out.plans, n, out.seconds, f"; {left} left for their first frame" if left else "")
    return out

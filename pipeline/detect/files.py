"""Run a detector over image files, one bad file never stopping the rest."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import supervision as sv

from ..source.images import ImageError, load_image
from .base import Detector


@dataclass
class FileResult:
    """The outcome for one file: detections, or the reason it could not be used."""

    path: Path
    detections: sv.Detections | None = None
    image: np.ndarray | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def detect_files(detector: Detector, paths: Iterable[Path], batch: int = 8, keep_images: bool = False) -> Iterator[FileResult]:
    """Yield one `FileResult` per path, in order. Good images are batched; at most `batch` are held in memory."""
    pending: list[FileResult] = []

    def flush() -> Iterator[FileResult]:
        good = [r for r in pending if r.ok]
        for r, d in zip(good, detector.detect([r.image for r in good]) if good else []):
            r.detections = d
            if not keep_images:
                r.image = None
        yield from pending
        pending.clear()

    for path in paths:
        try:
            pending.append(FileResult(path, image=load_image(path)))
        except ImageError as e:
            pending.append(FileResult(path, error=str(e)))
        if sum(r.ok for r in pending) >= batch:
            yield from flush()
    yield from flush()

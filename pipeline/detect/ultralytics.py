"""The training/evaluation backend: the same interface over an ultralytics `.pt` checkpoint. Needs torch."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import supervision as sv

from .base import DetectorSettings, make_detections, with_other_settings

# ultralytics reads YOLO_OFFLINE from the environment when it is imported (there is no argument for it), so this
# is set before any import of it: never reach for fonts, weights or update checks. The one kind of os.environ
# write kept on purpose (tests/config/test_settings_env.py allows only this one).
os.environ.setdefault("YOLO_OFFLINE", "1")


def import_yolo():
    """`ultralytics.YOLO`, with ultralytics' log on stderr for the rest of the process.

    ultralytics logs through a handler that keeps the `sys.stdout` it finds when it is first imported, and logs
    there on import (on a machine without its settings file: "Creating new Ultralytics Settings ...") and when it
    loads a model, which put text before the JSON of `streetorder bench --json` and `bench batch --json`. Imported
    here first, the handler keeps stderr instead. (An earlier import elsewhere in the process keeps its stdout.)"""
    with contextlib.redirect_stdout(sys.stderr):
        from ultralytics import YOLO
    return YOLO


class UltralyticsDetector:
    """`ultralytics.YOLO` behind the `Detector` interface.

    >>> det = UltralyticsDetector("models/street-v1/model.pt", DetectorSettings(imgsz=320))
    """

    backend = "ultralytics"

    def __init__(self, path: str | Path, settings: DetectorSettings | None = None, device: str = "cpu") -> None:
        YOLO = import_yolo()  # noqa: N806  (the class, as ultralytics names it)

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"checkpoint not found: {self.path}")
        self.settings = settings or DetectorSettings()
        self.model = YOLO(str(self.path))
        names = self.model.names
        self.names: tuple[str, ...] = tuple(names[i] for i in range(len(names)))
        self.keep_ids = self.settings.class_ids(self.names)
        trained = self.model.ckpt.get("train_args", {}).get("imgsz") if getattr(self.model, "ckpt", None) else None
        self.imgsz = self.settings.imgsz or int(trained or 640)
        self.device = device

    def with_settings(self, settings: DetectorSettings) -> UltralyticsDetector:
        """The same loaded model with other thresholds or class filter (as `ExportedDetector.with_settings`; a
        sliced view runs the two-wheelers from a lower floor)."""
        return with_other_settings(self, settings)

    def detect(self, images: Sequence[np.ndarray]) -> list[sv.Detections]:
        if not images:
            return []
        s = self.settings
        results = self.model.predict(
            list(images), imgsz=self.imgsz, conf=s.conf, iou=s.iou, classes=self.keep_ids, max_det=s.max_det, device=self.device, verbose=False
        )
        out = []
        for r in results:
            b = r.boxes
            out.append(make_detections(b.xyxy.cpu().numpy(), b.conf.cpu().numpy(), b.cls.cpu().numpy().astype(int), self.names))
        return out

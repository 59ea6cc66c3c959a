"""Detectors: one interface (`Detector.detect(images) -> list[sv.Detections]`), two backends.

`onnx` is the serving path and never imports torch; `ultralytics` is for training and evaluation.
"""

from .base import Detector, DetectorSettings, detections_to_records, make_detections
from .registry import ModelRef, load_detector, models_dir, resolve_model

__all__ = ["Detector", "DetectorSettings", "ModelRef", "detections_to_records", "load_detector", "make_detections", "models_dir", "resolve_model"]

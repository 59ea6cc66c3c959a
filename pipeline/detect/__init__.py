"""Detectors: one interface (`Detector.detect(images) -> list[sv.Detections]`), three backends.

`onnx` (onnxruntime) and `openvino` serve the exported `.onnx` and never import torch, and so do the INT8 and bf16
variants (`variants.py`); `auto` picks the fastest on this machine of onnx, openvino (when it agrees with onnx) and
the variants the accuracy gate accepted. `ultralytics` is for training and evaluation.
"""

from .base import Detector, DetectorSettings, detections_to_records, empty_detections, make_detections
from .registry import ModelRef, load_detector, models_dir, resolve_model

__all__ = ["Detector", "DetectorSettings", "ModelRef", "detections_to_records", "empty_detections", "load_detector", "make_detections", "models_dir", "resolve_model"]

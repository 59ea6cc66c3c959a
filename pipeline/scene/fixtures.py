"""Drop detections that are known, allowed static things (fixtures) of a camera."""

from __future__ import annotations

import numpy as np
import supervision as sv

from ..config import CameraConfig
from ..geometry import box_iou


def fixture_mask(detections: sv.Detections, camera: CameraConfig, width: int, height: int) -> np.ndarray:
    """True for each detection that matches a fixture: a class it covers, and IoU >= its `min_iou`."""
    hit = np.zeros(len(detections), dtype=bool)
    if len(detections) == 0 or not camera.fixtures:
        return hit
    names = detections.data["class_name"]
    for f in camera.fixtures:
        iou = box_iou(detections.xyxy, np.array([f.pixel_box(width, height, camera.resolution)]))[:, 0]
        same_class = np.ones(len(detections), dtype=bool) if f.classes is None else np.isin(names, f.classes)
        hit |= same_class & (iou >= f.min_iou)
    return hit

"""Drawing boxes and zones on frames, for `detect --save` and evidence context images."""

from __future__ import annotations

import numpy as np
import supervision as sv


def draw_detections(image: np.ndarray, detections: sv.Detections, in_place: bool = False) -> np.ndarray:
    """A copy of `image` with each detection boxed and labelled 'name score' (`in_place`: `image` itself, for a
    caller that drew on its own copy already: a 1080p copy is a few milliseconds)."""
    out = image if in_place else image.copy()
    if len(detections) == 0:
        return out
    scale = max(image.shape[:2]) / 1000
    labels = [f"{n} {s:.2f}" for n, s in zip(detections.data["class_name"], detections.confidence)]
    out = sv.BoxAnnotator(thickness=max(1, round(2 * scale))).annotate(out, detections)
    return sv.LabelAnnotator(text_scale=max(0.4, 0.5 * scale), text_thickness=max(1, round(scale))).annotate(out, detections, labels)

"""The detector interface and the settings both backends share."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
import copy
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np
import supervision as sv


@dataclass(frozen=True)
class DetectorSettings:
    """Thresholds and filters, the same for every backend so their outputs compare."""

    conf: float = 0.25
    iou: float = 0.7  # NMS IoU, ultralytics' predict default
    classes: tuple[str, ...] | None = None  # keep only these class names
    imgsz: int | None = None  # None: the size the model was exported or trained at
    max_det: int = 300
    rect: bool = True  # letterbox to the smallest stride-32 rectangle (ultralytics' predict), not the square: a wide frame costs less

    def __post_init__(self) -> None:
        if not 0.0 <= self.conf <= 1.0:
            raise ValueError(f"conf must be in [0, 1], got {self.conf}")
        if not 0.0 < self.iou <= 1.0:
            raise ValueError(f"iou must be in (0, 1], got {self.iou}")
        if self.imgsz is not None and (self.imgsz < 32 or self.imgsz % 32):
            raise ValueError(f"imgsz must be a multiple of 32 and at least 32, got {self.imgsz}")

    def class_ids(self, names: Sequence[str]) -> list[int] | None:
        """Resolve `classes` against a model's names; an unknown name is an error, not an empty result."""
        if self.classes is None:
            return None
        unknown = [c for c in self.classes if c not in names]
        if unknown:
            raise ValueError(f"unknown class(es) {unknown}; this model knows: {', '.join(names)}")
        return [names.index(c) for c in self.classes]


D = TypeVar("D")


def with_other_settings(detector: D, settings: DetectorSettings) -> D:
    """A shallow copy of a loaded detector (its `settings`, `imgsz`, `names`, `keep_ids`) with other thresholds or
    class filter: the model is loaded once. The input size cannot change (the model would have to be loaded again)."""
    imgsz = detector.imgsz  # type: ignore[attr-defined]
    if (settings.imgsz or imgsz) != imgsz:
        raise ValueError(f"with_settings cannot change imgsz ({imgsz} -> {settings.imgsz}); load the model again")
    other = copy.copy(detector)
    other.settings = settings  # type: ignore[attr-defined]
    other.keep_ids = settings.class_ids(detector.names)  # type: ignore[attr-defined]
    return other


class Detector(Protocol):
    """Anything that turns BGR images into detections in each image's own pixels."""

    names: tuple[str, ...]

    def detect(self, images: Sequence[np.ndarray]) -> list[sv.Detections]: ...


def warm(detector: Detector, sizes: Iterable[tuple[int, int]]) -> None:
    """Build now what `detector` would build on the first image of each (height, width): the input shapes an
    OpenVINO model compiles (`OpenVinoDetector.warm`), through a cascade's models and a sliced detector's tiles.
    A detector without `warm` (onnxruntime, ultralytics) builds nothing per shape."""
    method = getattr(detector, "warm", None)
    if method is not None:
        method(list(sizes))


def make_detections(xyxy: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, names: Sequence[str]) -> sv.Detections:
    """The one Detections value: `sv.Detections` with `data['class_name']` filled in."""
    class_ids = np.asarray(class_ids, dtype=int).reshape(-1)
    return sv.Detections(
        xyxy=np.asarray(xyxy, dtype=np.float32).reshape(-1, 4),
        confidence=np.asarray(scores, dtype=np.float32).reshape(-1),
        class_id=class_ids,
        data={"class_name": np.array([names[i] for i in class_ids], dtype=object)},
    )


def empty_detections() -> sv.Detections:
    """No detections, with the (empty) `data['class_name']` every Detections value carries."""
    d = sv.Detections.empty()
    d.data = {"class_name": np.array([], dtype=object)}
    return d


def detections_to_records(detections: sv.Detections) -> list[dict]:
    """JSON-ready list: class id and name, score, xyxy box in source pixels."""
    names = detections.data.get("class_name", [None] * len(detections))
    return [
        {"class_id": int(c), "class_name": str(n), "score": round(float(s), 4), "box": [round(float(v), 1) for v in xy]}
        for xy, s, c, n in zip(detections.xyxy, detections.confidence, detections.class_id, names)
    ]

"""What every format reads and writes: images with their labelled boxes, in pixels, by file name."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import supervision as sv

from .yolo import LabelProblem, check_box

Box = tuple[str, tuple[float, float, float, float]]  # class name, xyxy pixels


@dataclass(frozen=True)
class LabelledImage:
    """One image of a dataset: its file name (the sample id + suffix), size, boxes and provenance."""

    name: str
    path: Path
    width: int
    height: int
    boxes: tuple[Box, ...]
    meta: dict = field(default_factory=dict)
    predictions: tuple[Box, ...] = ()  # the model's own boxes, for tools that show them apart (Label Studio)


@dataclass
class ReadResult:
    """Boxes read from a tool's file, by image file name, and every problem met (nothing is dropped silently)."""

    boxes: dict[str, list[Box]] = field(default_factory=dict)
    problems: list[LabelProblem] = field(default_factory=list)
    sample_ids: dict[str, str] = field(default_factory=dict)  # image name -> sample id, where the file says


def check_pixel_box(file: Path, where: int | None, class_name: str, xyxy, width: int, height: int, classes: tuple[str, ...]) -> tuple[LabelProblem | None, Box | None]:
    """The same checks as a YOLO label line, for a box in pixels from any format: unknown class, out of range."""
    if class_name not in classes:
        return LabelProblem(file, where, f"unknown class {class_name!r} (known: {', '.join(classes)})"), None
    try:
        x1, y1, x2, y2 = (float(v) for v in xyxy)
    except (TypeError, ValueError):
        return LabelProblem(file, where, f"malformed box {xyxy!r}"), None
    if width <= 0 or height <= 0:
        return LabelProblem(file, where, "image size unknown"), None
    reason = check_box((x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height)
    if reason:
        return LabelProblem(file, where, reason), None
    clip = lambda v, hi: min(max(v, 0.0), float(hi))  # noqa: E731 -- within the tolerance, onto the image
    return None, (class_name, (clip(x1, width), clip(y1, height), clip(x2, width), clip(y2, height)))


def detection_dataset(images: list[LabelledImage], classes: tuple[str, ...]) -> sv.DetectionDataset:
    """The images as supervision's DetectionDataset, which writes the YOLO and COCO files."""
    annotations = {}
    for im in images:
        if im.boxes:
            annotations[str(im.path)] = sv.Detections(xyxy=np.array([b for _, b in im.boxes], dtype=np.float32), class_id=np.array([classes.index(c) for c, _ in im.boxes]))
        else:
            annotations[str(im.path)] = sv.Detections.empty()
    return sv.DetectionDataset(list(classes), [str(im.path) for im in images], annotations)


def write_yolo_labels(images: list[LabelledImage], classes: tuple[str, ...], labels_dir: Path) -> None:
    """One `class cx cy w h` file per image (an empty one for an image without objects)."""
    detection_dataset(images, classes).as_yolo(annotations_directory_path=str(labels_dir))

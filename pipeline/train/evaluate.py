"""mAP of a model on any YOLO-format dataset, with the ONNX serving model by default (no torch needed).

Dataset classes are matched to model classes by name, so garbage-cn (3 classes) evaluates the 12-class
street model on its 3 classes. Metrics are COCO-style, computed by `supervision.metrics.MeanAveragePrecision`.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import supervision as sv
from supervision.metrics import MeanAveragePrecision
from tqdm import tqdm

from ..detect import DetectorSettings, load_detector, resolve_model
from ..formats.yolo import DatasetError, cxcywh_to_xyxy, label_path, load_data_yaml, read_labels
from ..source.images import load_image
from .night import simulate_night

# ultralytics' validation settings: keep nearly every box so the whole precision-recall curve is seen.
EVAL_CONF, EVAL_IOU = 0.001, 0.7


def night_seed(image: Path) -> int:
    """A fixed seed per file name, so every run sees the same night copy of a validation set."""
    return zlib.crc32(image.name.encode())


def evaluate_model(
    data: str | Path,
    model: str | Path | None = None,
    split: str = "val",
    backend: str = "onnx",
    imgsz: int | None = None,
    night: bool = False,
    threads: int | None = None,
    progress: bool = True,
    limit: int | None = None,
) -> dict:
    """Evaluate and return `{"map50", "map50_95", "per_class": {name: {...}}, ...}`. `backend` may be any serving
    backend or variant (`openvino-int8`, ...), so a variant is measured as it is served; `limit`: the split's
    first images only (tests)."""
    dataset = load_data_yaml(data)
    ref = resolve_model(model)
    detector = load_detector(model, backend=backend, settings=DetectorSettings(conf=EVAL_CONF, iou=EVAL_IOU, imgsz=imgsz), threads=threads)
    missing = [n for n in dataset.names if n not in detector.names]
    if missing:
        raise DatasetError(f"{data}: class(es) {missing} are not known to model '{ref.name}' ({', '.join(detector.names)})")
    to_dataset = {detector.names.index(n): i for i, n in enumerate(dataset.names)}
    images = dataset.images(split)[:limit] if limit else dataset.images(split)
    if not images:
        raise DatasetError(f"{data}: split '{split}' has no images")

    metric = MeanAveragePrecision()
    instances = np.zeros(len(dataset.names), dtype=int)
    for path in tqdm(images, desc=f"evaluate {ref.name}", unit="img", disable=not progress):
        image = load_image(path)
        if night:
            image = simulate_night(image, seed=night_seed(path))
        h, w = image.shape[:2]
        rows = read_labels(label_path(path))
        target = sv.Detections(xyxy=(cxcywh_to_xyxy(rows[:, 1:]) * [w, h, w, h]).astype(np.float32).reshape(-1, 4), class_id=rows[:, 0].astype(int))
        instances += np.bincount(target.class_id, minlength=len(dataset.names))[: len(dataset.names)]
        pred = detector.detect([image])[0]
        keep = np.isin(pred.class_id, list(to_dataset))
        pred = pred[keep]
        pred.class_id = np.array([to_dataset[c] for c in pred.class_id], dtype=int)
        metric.update(pred, target)
    result = metric.compute()

    per_class = {}
    for i, name in enumerate(dataset.names):
        row = np.where(result.matched_classes == i)[0]
        ap = result.ap_per_class[row[0]] if len(row) else np.full(10, np.nan)
        per_class[name] = {"map50": _num(ap[0]), "map50_95": _num(np.nanmean(ap) if np.isfinite(ap).any() else np.nan), "instances": int(instances[i])}
    return {
        "model": ref.name,
        "backend": getattr(detector, "backend", backend),
        "data": str(data),
        "split": split,
        "night": night,
        "images": len(images),
        "imgsz": getattr(detector, "imgsz", imgsz),
        "map50": _num(result.map50),
        "map50_95": _num(result.map50_95),
        "per_class": per_class,
        "metric": "COCO-style AP (supervision.metrics.MeanAveragePrecision), conf 0.001, NMS IoU 0.7",
    }


def _num(x: float) -> float | None:
    x = float(x)
    return None if not np.isfinite(x) or x < 0 else round(x, 4)

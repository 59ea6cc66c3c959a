"""The slicing study: does running the detector over tiles (plus the full frame) find more, and at what cost?

`streetorder evaluate --slice-study` measures the model (models/CURRENT by default, ONNX backend) served as the
night job serves it (score floor 0.25, NMS 0.7), full frame versus `SlicedDetector` over the whole frame:
- streets-in holdout (78 images never trained on, human labels): two-wheeler recall and precision at IoU 0.5,
  bicycle and motorcycle predictions both matching the human `bike` label (motorbikes and scooters), counting
  predictions at the parking rule's default `min_score`;
- garbage-cn val: recall and precision of the street classes (garbage, garbage_bin, overflow), class by class,
  at the garbage rule's default `min_score`;
- median milliseconds per frame (one image per call, as a live camera frame), full and sliced.

Precision is against human labels: on streets-in, far-off bikes nobody labelled count as false positives.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import supervision as sv

from ..rules.garbage import GarbageRule
from ..rules.parking import ParkingRule
from ..paths import SHARED, STREETS_SPLIT
from ..detect import Detector
from ..formats.yolo import cxcywh_to_xyxy, label_path, list_images, read_labels
from ..geometry import box_iou
from ..source.images import load_image
from .dataset import Sources

TWO_WHEELERS = ("bicycle", "motorcycle")
STREETS_IN_BIKE = 0  # streets-in's published class id for motorbikes and scooters
STREET_CLASSES = ("garbage", "garbage_bin", "overflow")  # garbage-cn's class ids 0, 1, 2
MATCH_IOU = 0.5
SERVE_CONF = 0.25  # the detector's score floor in `streetorder run` and the service


def match(pred: np.ndarray, truth: np.ndarray, iou: float = MATCH_IOU) -> int:
    """True positives: one-to-one matches at IoU >= `iou`, predictions taken best score first (the order given)."""
    if not len(pred) or not len(truth):
        return 0
    m = box_iou(pred, truth)
    used = np.zeros(len(truth), dtype=bool)
    tp = 0
    for i in range(len(pred)):
        cand = np.where(~used & (m[i] >= iou))[0]
        if len(cand):
            used[cand[np.argmax(m[i, cand])]] = True
            tp += 1
    return tp


class _Tally:
    def __init__(self) -> None:
        self.tp = self.pred = self.truth = 0

    def add(self, pred: np.ndarray, truth: np.ndarray) -> None:
        self.tp += match(pred, truth)
        self.pred += len(pred)
        self.truth += len(truth)

    def as_dict(self) -> dict:
        return {
            "recall": round(self.tp / self.truth, 4) if self.truth else None,
            "precision": round(self.tp / self.pred, 4) if self.pred else None,
            "found": self.tp,
            "labels": self.truth,
            "predictions": self.pred,
        }


def _boxes(d: sv.Detections, classes: Sequence[str], score: float) -> np.ndarray:
    keep = np.isin(d.data["class_name"], list(classes)) & (d.confidence >= score)
    xyxy, conf = d.xyxy[keep], d.confidence[keep]
    return xyxy[np.argsort(-conf, kind="stable")]


def _truth(image_path: Path, shape: tuple[int, ...], class_id: int) -> np.ndarray:
    rows = read_labels(label_path(image_path))
    rows = rows[rows[:, 0] == class_id]
    h, w = shape[:2]
    return cxcywh_to_xyxy(rows[:, 1:]) * np.array([w, h, w, h], dtype=np.float32) if len(rows) else np.zeros((0, 4), np.float32)


def _timed(detector: Detector, image: np.ndarray, times: list[float]) -> sv.Detections:
    t = time.perf_counter()
    d = detector.detect([image])[0]
    times.append((time.perf_counter() - t) * 1000)
    return d


def study(detectors: dict[str, Detector], holdout: Sequence[Path], garbage_val: Sequence[Path], bike_score: float, garbage_score: float) -> dict:
    """The numbers for each detector (e.g. 'full', 'sliced'), on the same images in the same order."""
    keys = list(detectors)
    bikes = {k: _Tally() for k in keys}
    street = {k: {c: _Tally() for c in STREET_CLASSES} for k in keys}
    times: dict[str, list[float]] = {k: [] for k in keys}
    per_image_bikes: dict[str, dict[str, int]] = {}
    for p in holdout:
        image = load_image(p)
        truth = _truth(p, image.shape, STREETS_IN_BIKE)
        row = {"labels": len(truth)}
        for k in keys:
            pred = _boxes(_timed(detectors[k], image, times[k]), TWO_WHEELERS, bike_score)
            bikes[k].add(pred, truth)
            row[k] = len(pred)
        per_image_bikes[p.name] = row
    for p in garbage_val:
        image = load_image(p)
        for k in keys:
            d = _timed(detectors[k], image, times[k])
            for cid, c in enumerate(STREET_CLASSES):
                street[k][c].add(_boxes(d, (c,), garbage_score), _truth(p, image.shape, cid))
    out: dict = {"images": {"streets_in_holdout": len(holdout), "garbage_cn_val": len(garbage_val)}, "detectors": {}}
    for k in keys:
        total = _Tally()
        for t in street[k].values():
            total.tp, total.pred, total.truth = total.tp + t.tp, total.pred + t.pred, total.truth + t.truth
        out["detectors"][k] = {
            "streets_in_two_wheelers": bikes[k].as_dict(),
            "garbage_cn_street_classes": total.as_dict() | {"per_class": {c: t.as_dict() for c, t in street[k].items()}},
            "ms_per_frame": {
                "median": round(statistics.median(times[k]), 1),
                "p90": round(float(np.percentile(times[k], 90)), 1),
                "frames": len(times[k]),
            },
        }
    dense = {n: r for n, r in per_image_bikes.items() if r["labels"] >= 6}
    out["dense_holdout_images"] = dense  # two-wheelers counted at the rule's score, per image with >= 6 labels
    return out


def slice_study(model=None, shared: Path = SHARED, tiles: tuple[int, int] = (2, 2), overlap: float = 0.2, threads: int | None = None, imgsz: int | None = None) -> dict:
    """`streetorder evaluate --slice-study`: full frame versus sliced, for `model` on the ONNX backend."""
    from ..detect import DetectorSettings, load_detector, resolve_model
    from ..detect.slicing import SlicedDetector, SliceSettings

    ref = resolve_model(model)
    base = load_detector(model, backend="onnx", settings=DetectorSettings(conf=SERVE_CONF, imgsz=imgsz), threads=threads)
    settings = SliceSettings(tiles=tuple(tiles), overlap=overlap)
    detectors: dict[str, Detector] = {"full": base, "sliced": SlicedDetector(base, settings)}
    data = Path(shared) / "data"
    sources = Sources(data / "garbage-cn", data / "streets-in", STREETS_SPLIT)
    holdout = sources.holdout_streets()
    garbage_val = list_images(data / "garbage-cn" / "val" / "images")
    bike_score = ParkingRule().min_score
    garbage_score = GarbageRule().min_score
    started = time.perf_counter()
    report = study(detectors, holdout, garbage_val, bike_score, garbage_score)
    return {
        "model": ref.name,
        "backend": "onnx",
        "imgsz": getattr(base, "imgsz", None),
        "threads": threads,
        "slicing": {"tiles": list(settings.tiles), "overlap": settings.overlap, "nms_iou": settings.iou},
        "scores": {"two_wheelers": bike_score, "street_classes": garbage_score, "detector_floor": SERVE_CONF},
        "match_iou": MATCH_IOU,
        "seconds": round(time.perf_counter() - started, 1),
    } | report

"""The slicing study: does running the detector over tiles (plus the full frame) find more, and at what cost?

`streetorder evaluate --slice-study` measures the model (models/CURRENT by default, ONNX backend) as a parking
camera is served: with its cue model (which owns bicycle and motorcycle) and the night job's thresholds (score
floor 0.25, NMS 0.7), full frame versus sliced model by model (`plan.sliced_detector`, each model's tiles no larger
than its input), once per merge as it was (`slicing.MERGES`, the best member's score) and once with the default
two-wheeler operating point (views summed from a lower floor), on the same images, optionally resized first
(`size`: 1024 for the held-out rack photos' size); with recall/precision curves over the two-wheelers' score:
- streets-in holdout (78 images never trained on, human labels): two-wheeler recall and precision at IoU 0.5,
  bicycle and motorcycle predictions both matching the human `bike` label (motorbikes and scooters), counting
  predictions at the parking rule's default `min_score`;
- garbage-cn val: recall and precision of the street classes (garbage, garbage_bin, overflow), class by class,
  at the garbage rule's default `min_score`;
- heap photos: the streets-in photos with at least 6 labelled bikes (dense rows of parked motorbikes and
  scooters, the nearest to a heap this project holds): the same recall and precision, and the same again under
  the looser match the held-out rack photos were measured with (IoU >= 0.3 or the box's centre inside a label);
- median milliseconds per frame (one image per call, as a live camera frame), full and sliced, measured on a
  separate pass without the cache the merges share (`timing_frames` holdout images, interleaved).

Precision is against human labels: on streets-in, far-off bikes nobody labelled count as false positives.
"""

from __future__ import annotations

import hashlib
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
from ..detect.slicing import TWO_WHEELERS
from ..formats.yolo import cxcywh_to_xyxy, label_path, list_images, read_labels

from ..geometry import box_iou
from ..source.images import load_image
from .dataset import Sources

STREETS_IN_BIKE = 0  # streets-in's published class id for motorbikes and scooters
STREET_CLASSES = ("garbage", "garbage_bin", "overflow")  # garbage-cn's class ids 0, 1, 2
MATCH_IOU = 0.5
SERVE_CONF = 0.25  # the detector's score floor in `streetorder run` and the service


HEAP_LABELS = 6  # a streets-in photo with at least this many labelled bikes is a heap photo
LOOSE_IOU = 0.3


def match(pred: np.ndarray, truth: np.ndarray, iou: float = MATCH_IOU, centre: bool = False) -> int:
    """True positives: one-to-one matches at IoU >= `iou` (or, with `centre`, the prediction's centre inside the
    label), predictions taken best score first (the order given)."""
    if not len(pred) or not len(truth):
        return 0
    m = box_iou(pred, truth)
    ok = m >= iou
    if centre:
        c = (pred[:, :2] + pred[:, 2:]) / 2
        ok |= (c[:, None, 0] >= truth[None, :, 0]) & (c[:, None, 0] <= truth[None, :, 2]) & (c[:, None, 1] >= truth[None, :, 1]) & (c[:, None, 1] <= truth[None, :, 3])
    used = np.zeros(len(truth), dtype=bool)
    tp = 0
    for i in range(len(pred)):
        cand = np.where(~used & ok[i])[0]
        if len(cand):
            used[cand[np.argmax(m[i, cand])]] = True
            tp += 1
    return tp


class _Tally:
    def __init__(self, iou: float = MATCH_IOU, centre: bool = False) -> None:
        self.tp = self.pred = self.truth = 0
        self.iou, self.centre = iou, centre

    def add(self, pred: np.ndarray, truth: np.ndarray) -> None:
        self.tp += match(pred, truth, self.iou, self.centre)
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


class Cached:
    """A model whose answers are kept per image content, so that the settings compared share one inference of
    each tile (timing is measured apart, without it). The model runs once at `floor` (when lower than its own
    score floor); `with_settings` gives the same cache at another floor, its boxes cut to that score (the same
    boxes the model would give at it: NMS per class keeps a box whatever lies below it)."""

    def __init__(self, base: Detector, floor: float | None = None) -> None:
        self.base, self.names = base, tuple(base.names)
        self.imgsz = getattr(base, "imgsz", None)
        self.settings = getattr(base, "settings", None)
        self._run = base
        if floor is not None and self.settings is not None and floor < self.settings.conf:
            from dataclasses import replace

            self._run = base.with_settings(replace(self.settings, conf=floor))
        self._seen: dict[str, sv.Detections] = {}

    def with_settings(self, settings) -> Cached:
        """This cache at another score floor (no lower than the floor it was made with); only `conf` may differ."""
        from copy import copy
        from dataclasses import replace

        if self.settings is None or replace(settings, conf=self.settings.conf) != self.settings:
            raise ValueError("a cached model can only change its score floor")
        run_conf = getattr(getattr(self._run, "settings", None), "conf", 0.0)
        if settings.conf < run_conf:
            raise ValueError(f"this cache holds boxes from {run_conf}; make it with floor={settings.conf}")
        other = copy(self)
        other.settings = settings
        return other

    def detect(self, images: Sequence[np.ndarray]) -> list[sv.Detections]:
        keys = [hashlib.blake2b(np.ascontiguousarray(im).tobytes(), digest_size=16).hexdigest() + str(im.shape) for im in images]
        new = [i for i, k in enumerate(keys) if k not in self._seen]
        if new:
            for i, d in zip(new, self._run.detect([images[i] for i in new])):
                self._seen[keys[i]] = d
        conf = self.settings.conf if self.settings is not None else 0.0
        return [self._seen[k][self._seen[k].confidence >= conf] for k in keys]  # a copy: callers move boxes


def _load(path: Path, size: int | None) -> np.ndarray:
    """A photo, resized to `size` x `size` when given (the hidden rack photos are 1024 x 1024; the served
    behaviour differs with frame size: the grid, the upscale of a tile)."""
    image = load_image(path)
    if size is not None and image.shape[:2] != (size, size):
        import cv2

        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)
    return image


def study(
    detectors: dict[str, Detector], holdout: Sequence[Path], heaps: Sequence[Path], garbage_val: Sequence[Path], bike_score: float, garbage_score: float,
    timed: dict[str, Detector] | None = None, timing_frames: int = 20, curves: dict[str, Detector] | None = None, curve_scores: Sequence[float] = (),
    size: int | None = None,
) -> dict:
    """The numbers for each detector (e.g. 'full', 'sliced nms'), on the same images in the same order; `timed`:
    the detectors whose ms per frame is measured (default: all), on the first `timing_frames` holdout images;
    `curves`: detectors whose two-wheelers are counted at each of `curve_scores` (recall/precision curves on the
    holdout and, loose match, on the heap photos); `size`: photos resized to size x size first."""
    keys = list(detectors)
    bikes = {k: _Tally() for k in keys}
    heap = {k: (_Tally(), _Tally(LOOSE_IOU, centre=True)) for k in keys}
    street = {k: {c: _Tally() for c in STREET_CLASSES} for k in keys}
    curves = curves or {}
    curve = {k: {t: (_Tally(), _Tally(LOOSE_IOU, centre=True)) for t in curve_scores} for k in curves}
    per_heap: dict[str, dict[str, int]] = {}
    for group, paths in (("holdout", holdout), ("heaps", heaps)):
        for p in paths:
            image = _load(p, size)
            truth = _truth(p, image.shape, STREETS_IN_BIKE)
            row = {"labels": len(truth)}
            for k in keys:
                pred = _boxes(detectors[k].detect([image])[0], TWO_WHEELERS, bike_score)
                if group == "holdout":
                    bikes[k].add(pred, truth)
                else:
                    heap[k][0].add(pred, truth)
                    heap[k][1].add(pred, truth)
                    row[k] = len(pred)
            for k, det in curves.items():
                [d] = det.detect([image])
                for t in curve_scores:
                    curve[k][t][0 if group == "holdout" else 1].add(_boxes(d, TWO_WHEELERS, t), truth)
            if group == "heaps":
                per_heap[p.name] = row
    for p in garbage_val:
        image = _load(p, size)
        for k in keys:
            d = detectors[k].detect([image])[0]
            for cid, c in enumerate(STREET_CLASSES):
                street[k][c].add(_boxes(d, (c,), garbage_score), _truth(p, image.shape, cid))
    times = _times(timed if timed is not None else detectors, holdout[:timing_frames], size)
    out: dict = {"images": {"streets_in_holdout": len(holdout), "heap_photos": len(heaps), "garbage_cn_val": len(garbage_val)}, "detectors": {}}
    for k in keys:
        total = _Tally()
        for t in street[k].values():
            total.tp, total.pred, total.truth = total.tp + t.tp, total.pred + t.pred, total.truth + t.truth
        out["detectors"][k] = {
            "streets_in_two_wheelers": bikes[k].as_dict(),
            "heap_photos": heap[k][0].as_dict() | {"loose": heap[k][1].as_dict()},
            "garbage_cn_street_classes": total.as_dict() | {"per_class": {c: t.as_dict() for c, t in street[k].items()}},
        }
    out["ms_per_frame"] = times
    out["heap_counts"] = per_heap  # two-wheelers counted at the rule's score, per heap photo
    if curves:  # per score: holdout (IoU 0.5) and heap photos (loose match)
        out["curves"] = {k: {f"{t:g}": {"holdout": h.as_dict(), "heaps_loose": l.as_dict()} for t, (h, l) in per.items()} for k, per in curve.items()}
    return out


def _times(detectors: dict[str, Detector], paths: Sequence[Path], size: int | None = None) -> dict[str, dict]:
    """Median and p90 ms per frame, one image per call, the detectors interleaved so that load hits all alike."""
    if not paths:
        return {}
    times: dict[str, list[float]] = {k: [] for k in detectors}
    for p in paths:
        image = _load(p, size)
        for k, det in detectors.items():
            t = time.perf_counter()
            det.detect([image])
            times[k].append((time.perf_counter() - t) * 1000)
    return {k: {"median": round(statistics.median(v), 1), "p90": round(float(np.percentile(v, 90)), 1), "frames": len(v)} for k, v in times.items()}


def heap_photos(streets_in: Path, min_labels: int = HEAP_LABELS) -> list[Path]:
    """The streets-in photos with at least `min_labels` labelled bikes: rows and heaps of parked two-wheelers."""
    return [p for p in list_images(streets_in / "images") if (read_labels(label_path(p))[:, 0] == STREETS_IN_BIKE).sum() >= min_labels]


CURVE_SCORES = (0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)


def slice_study(
    model=None, shared: Path = SHARED, tiles: tuple[int, int] = (2, 2), overlap: float = 0.2, threads: int | None = None, imgsz: int | None = None,
    garbage: bool = True, timing_frames: int = 20, size: int | None = None,
) -> dict:
    """`streetorder evaluate --slice-study`: the served cascade on the full frame versus sliced, on the ONNX
    backend: each merge as it was (the best member's score, the model's floor), and the default (two-wheelers
    from `group_floor`, scored by the sum of their views, kept at `group_min_score`), with recall/precision
    curves over the two-wheelers' score. `garbage` False skips garbage-cn val (391 images, most of the time);
    `size`: the photos resized to size x size first (1024: the hidden rack photos' size)."""
    from dataclasses import replace

    from ..detect import DetectorSettings, resolve_model
    from ..detect.cascade import CueCascade, load_cue_cascade
    from ..detect.plan import sliced_detector
    from ..detect.slicing import MERGES, SliceSettings

    ref = resolve_model(model)
    served = load_cue_cascade(model, backend="onnx", settings=DetectorSettings(conf=SERVE_CONF, imgsz=imgsz), threads=threads)
    settings = SliceSettings(tiles=tuple(tiles), overlap=overlap)
    as_it_was = replace(settings, group_score="max", group_floor=None, group_min_score=None)
    low = min(CURVE_SCORES)
    if isinstance(served, CueCascade):
        cached = served.with_models(Cached(served.primary, low), Cached(served.cue, low))
        full_low = cached.with_models(cached.primary, cached.cue.with_settings(replace(cached.cue.settings, conf=low)))
    else:
        cached = Cached(served, low)
        full_low = cached.with_settings(replace(cached.settings, conf=low))
    detectors: dict[str, Detector] = {"full": cached}
    for m in MERGES:
        detectors[f"sliced {m}"] = sliced_detector(cached, None, replace(as_it_was, merge=m))
    detectors["sliced (default)"] = sliced_detector(cached, None, settings)
    curves = {
        "full": full_low,
        "sliced wbf, best member's score": sliced_detector(cached, None, replace(as_it_was, group_floor=low, group_min_score=low)),
        "sliced wbf, views summed, any score": sliced_detector(cached, None, replace(settings, group_min_score=low)),
        # the default as it is: at the detector's floor, every two-wheeler `detect --slice` shows; at the rule's score, what it counts
        "sliced (default)": detectors["sliced (default)"],
    }
    timed = {"full": served, "sliced (default)": sliced_detector(served, None, settings), "sliced as it was": sliced_detector(served, None, as_it_was)}
    data = Path(shared) / "data"
    sources = Sources(data / "garbage-cn", data / "streets-in", STREETS_SPLIT)
    holdout = sources.holdout_streets()
    garbage_val = list_images(data / "garbage-cn" / "val" / "images") if garbage else []
    bike_score = ParkingRule().min_score
    garbage_score = GarbageRule().min_score
    started = time.perf_counter()
    report = study(
        detectors, holdout, heap_photos(data / "streets-in"), garbage_val, bike_score, garbage_score, timed=timed, timing_frames=timing_frames,
        curves=curves, curve_scores=CURVE_SCORES, size=size,
    )
    sliced = timed["sliced (default)"]
    parts = {"street": getattr(sliced, "primary", sliced), "cue": getattr(sliced, "cue", None)}
    tiles_per_model = {k: {f"{w}x{h}": len(m.tiles(w, h)) for w, h in ((640, 640), (1024, 1024), (1920, 1080))} for k, m in parts.items() if hasattr(m, "tiles")}
    return {
        "model": ref.name,
        "served": getattr(served, "backend", "?"),
        "backend": "onnx",
        "imgsz": {"street": getattr(served, "imgsz", None), "cue": getattr(getattr(served, "cue", None), "imgsz", None)},
        "threads": threads,
        "photo_size": size,
        "slicing": {"tiles": list(settings.tiles), "overlap": settings.overlap, "merge_iou": settings.iou, "merge": settings.merge,
                    "drop_cut": settings.drop_cut, "groups": [list(g) for g in settings.groups], "group_score": settings.group_score,
                    "group_floor": settings.group_floor, "group_min_score": settings.group_min_score, "tiles_per_frame": tiles_per_model},
        "scores": {"two_wheelers": bike_score, "street_classes": garbage_score, "detector_floor": SERVE_CONF},
        "match_iou": MATCH_IOU,
        "heap_loose_match": f"IoU >= {LOOSE_IOU} or centre inside",
        "seconds": round(time.perf_counter() - started, 1),
    } | report

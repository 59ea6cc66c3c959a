"""The cue-class evaluation: can the detector see what the vending and parking rules are built from?

garbage-cn val alone holds 17 bicycles, 7 benches, 1 umbrella and no chair, too few to measure anything. This
set adds real streets with the cues in numbers: the held-out streets-in images (parked two-wheelers with
human labels, people, carts and umbrellas) and frames of `vtest.avi` (a busy walkway).

Two measures, at the size the detector serves at:
- recall against the reference (the COCO model at 640 px, score ≥ `REFERENCE_CONF`) per cue class, counting
  only detections at or above the score the rule reading that class uses (`rule_scores`);
- mAP50 of two-wheelers against the human `bike` labels of streets-in (bicycle and motorcycle predictions
  both count as a two-wheeler).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import supervision as sv
from supervision.metrics import MeanAveragePrecision

from ..config.models import RulesConfig
from ..detect import Detector
from ..detect.slicing import TWO_WHEELERS
from ..formats.yolo import cxcywh_to_xyxy, label_path, list_images, read_labels
from ..source.images import load_image
from ..paths import SHARED, STREETS_SPLIT
from ..samples.classes import COCO_KEEP
from .dataset import Sources
from .measure import recall_against_reference

CUE_CLASSES: tuple[str, ...] = tuple(COCO_KEEP.values())
REFERENCE_CONF = 0.4  # the reference's boxes: the COCO model's confident detections (the pseudo-label rule)
REFERENCE_IMGSZ = 640
STREETS_IN_BIKE = 0  # streets-in's published class id for motorbikes and scooters
VTEST_EVERY = 20  # frames of vtest.avi (10 fps): one every 2 s, like the night job's sampling


@dataclass(frozen=True)
class CueImage:
    set: str
    name: str
    image: np.ndarray
    two_wheelers: np.ndarray | None  # human boxes (pixels), where the set has them


def rule_scores(rules: RulesConfig | None = None) -> dict[str, float]:
    """The lowest score at which a rule counts each cue class as evidence (the rules' defaults)."""
    rules = rules or RulesConfig()
    scores: dict[str, float] = {}
    for t in rules.types():
        r = rules.rule(t)
        for c in r.used_classes():
            scores[c] = min(scores.get(c, 1.0), r.min_score)
    default = type(rules.street_vending).model_fields["min_score"].default
    return {c: scores.get(c, default) for c in CUE_CLASSES}


def cue_images(sources: Sources, video: Path, garbage_cn_val: Path) -> Iterator[CueImage]:
    """The evaluation set, in a fixed order: streets-in holdout, vtest frames, garbage-cn val."""
    for p in sources.holdout_streets():
        image = load_image(p)
        h, w = image.shape[:2]
        rows = read_labels(label_path(p))
        rows = rows[rows[:, 0] == STREETS_IN_BIKE] if len(rows) else rows
        yield CueImage("streets-in holdout", p.name, image, (cxcywh_to_xyxy(rows[:, 1:]) * [w, h, w, h]).reshape(-1, 4) if len(rows) else np.zeros((0, 4)))
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise FileNotFoundError(f"cannot open {video}")
    i = 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if i % VTEST_EVERY == 0:
                yield CueImage("vtest frames", f"{video.stem}_{i:04d}", frame, None)
            i += 1
    finally:
        cap.release()
    for p in list_images(garbage_cn_val):
        yield CueImage("garbage-cn val", p.name, load_image(p), None)


def evaluate_cues(detectors: dict[str, Detector], reference: Detector, images: Sequence[CueImage] | Iterator[CueImage], rules: RulesConfig | None = None) -> dict:
    """Score each detector (run at a low score: 0.001 suits the mAP) on the cue set against `reference`."""
    scores = rule_scores(rules)
    refs: list[sv.Detections] = []
    got: dict[str, list[sv.Detections]] = {k: [] for k in detectors}
    per_set: dict[str, list[int]] = {}
    maps = {k: MeanAveragePrecision() for k in detectors}
    bikes = 0
    for n, item in enumerate(images):
        per_set.setdefault(item.set, []).append(n)
        r = reference.detect([item.image])[0]
        refs.append(r[(r.confidence >= REFERENCE_CONF) & np.isin(r.data["class_name"], CUE_CLASSES)])
        for key, det in detectors.items():
            d = det.detect([item.image])[0]
            if item.two_wheelers is not None:
                maps[key].update(_two_wheelers(d), sv.Detections(xyxy=item.two_wheelers.astype(np.float32), class_id=np.zeros(len(item.two_wheelers), dtype=int)))
            names = d.data["class_name"]
            at_rule = np.array([s >= scores.get(str(c), 1.1) for c, s in zip(names, d.confidence)], dtype=bool)
            got[key].append(d[at_rule] if len(d) else d)
        if item.two_wheelers is not None:
            bikes += len(item.two_wheelers)

    out: dict = {
        "images": {s: len(ix) for s, ix in per_set.items()},
        "reference": f"COCO model at {REFERENCE_IMGSZ} px, score >= {REFERENCE_CONF}",
        "rule_scores": scores,
        "human_two_wheelers": bikes,
        "detectors": {},
    }
    for key in detectors:
        overall = recall_against_reference(got[key], refs, CUE_CLASSES)
        sets = {s: recall_against_reference([got[key][i] for i in ix], [refs[i] for i in ix], CUE_CLASSES)["recall"] for s, ix in per_set.items()}
        m = maps[key].compute()
        out["detectors"][key] = {
            "recall": overall["recall"],
            "per_class": {c: v | {"score": scores[c]} for c, v in overall["per_class"].items()},
            "recall_per_set": sets,
            "two_wheeler_map50_human": None if m.map50 < 0 else round(float(m.map50), 4),
        }
    return out


def _two_wheelers(d: sv.Detections) -> sv.Detections:
    keep = np.isin(d.data["class_name"], TWO_WHEELERS)
    return sv.Detections(xyxy=d.xyxy[keep], confidence=d.confidence[keep], class_id=np.zeros(int(keep.sum()), dtype=int))


EVAL_CONF = 0.001  # keep nearly every box: the mAP needs the whole curve; recall filters at the rule's score


def cue_report(model=None, shared: Path = SHARED, backend: str = "onnx", reference: str = "yolo11n-coco", threads: int | None = None, imgsz: int | None = None) -> dict:
    """`streetorder evaluate --cues`: the model alone and, when its card names one, with its cue model.

    `per_class` at the top is the configuration a camera with a vending or parking zone is served with.
    """
    from ..detect import DetectorSettings, load_detector, resolve_model
    from ..detect.cascade import load_cue_cascade

    ref = resolve_model(model)
    settings = DetectorSettings(conf=EVAL_CONF, iou=0.7, imgsz=imgsz)
    detectors: dict[str, Detector] = {ref.name: load_detector(model, backend=backend, settings=settings, threads=threads)}
    if ref.card.get("cue_model"):
        detectors[f"{ref.name}+{ref.card['cue_model']['name']}"] = load_cue_cascade(model, backend=backend, settings=settings, threads=threads)
    teacher = load_detector(reference, backend=backend, settings=DetectorSettings(conf=REFERENCE_CONF, imgsz=REFERENCE_IMGSZ), threads=threads)
    data = Path(shared) / "data"
    sources = Sources(data / "garbage-cn", data / "streets-in", STREETS_SPLIT)
    report = evaluate_cues(detectors, teacher, cue_images(sources, data / "video" / "vtest.avi", data / "garbage-cn" / "val" / "images"))
    served = list(report["detectors"])[-1]
    return {"model": ref.name, "served_as": served, "per_class": report["detectors"][served]["per_class"]} | report

"""Label the COCO classes the rules need with the COCO model itself.

Fine-tuning on garbage labels alone would teach the model that every person and bicycle in a street photo is
background, so it would forget them. The teacher's confident detections become ordinary YOLO labels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..geometry import box_iou
from ..samples.classes import COCO_TO_MERGED


@dataclass(frozen=True)
class TeacherBox:
    """One teacher detection, in normalized xyxy, with its merged-model class id."""

    cls: int
    score: float
    xyxy: tuple[float, float, float, float]


def run_teacher(weights: Path, images: list[Path], cache: Path, imgsz: int = 640, min_conf: float = 0.1) -> dict[str, list[TeacherBox]]:
    """Run the COCO teacher once over `images` and cache every kept-class box above `min_conf`.

    The cache holds low-score boxes too, so the label threshold can be changed (and justified) without
    running the teacher again. The cache is keyed by weights, image size and the image list.
    """
    key = {"weights": str(Path(weights).resolve()), "imgsz": imgsz, "min_conf": min_conf, "n": len(images)}
    if cache.exists():
        stored = json.loads(cache.read_text())
        if stored.get("key") == key and set(stored["boxes"]) == {p.name for p in images}:
            return {k: [TeacherBox(b[0], b[1], tuple(b[2])) for b in v] for k, v in stored["boxes"].items()}

    from tqdm import tqdm
    from ultralytics import YOLO

    model = YOLO(str(weights))
    out: dict[str, list[TeacherBox]] = {}
    keep = list(COCO_TO_MERGED)
    for path in tqdm(images, desc="teacher", unit="img"):
        result = model.predict(str(path), imgsz=imgsz, conf=min_conf, classes=keep, verbose=False)[0]
        boxes = result.boxes
        xyxyn = boxes.xyxyn.cpu().numpy()
        out[path.name] = [
            TeacherBox(COCO_TO_MERGED[int(c)], round(float(s), 4), tuple(round(float(v), 5) for v in xy))
            for c, s, xy in zip(boxes.cls.cpu().numpy(), boxes.conf.cpu().numpy(), xyxyn)
        ]
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"key": key, "boxes": {k: [[b.cls, b.score, list(b.xyxy)] for b in v] for k, v in out.items()}}))
    return out


def select_pseudo_labels(
    teacher: list[TeacherBox], human_xyxy: np.ndarray, conf: float, max_overlap: float = 0.5
) -> tuple[list[TeacherBox], int]:
    """Keep teacher boxes at or above `conf` that do not sit on a human-labelled street object.

    The COCO model often calls a bin a chair or a pile a bench. A box that overlaps a human label by more
    than `max_overlap` IoU would teach the model two names for one object, and a bin named 'chair' would
    later feed the vending rule, so the human label wins. Returns the kept boxes and how many were dropped
    for overlap.
    """
    confident = [b for b in teacher if b.score >= conf]
    if not confident or len(human_xyxy) == 0:
        return confident, 0
    iou = box_iou(np.array([b.xyxy for b in confident]), human_xyxy)
    clash = iou.max(axis=1) > max_overlap
    return [b for b, c in zip(confident, clash) if not c], int(clash.sum())

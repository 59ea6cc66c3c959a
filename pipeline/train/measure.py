"""The numbers a model card reports beyond mAP: false alarms on clean streets, forgetting, speed."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import supervision as sv

from ..detect import Detector
from ..source.images import load_image
from ..geometry import box_iou


def false_positives_per_image(detector: Detector, images: Sequence[Path], classes: Sequence[str], confs: Sequence[float] = (0.25, 0.5)) -> dict:
    """Detections of `classes` per image on images known to contain none of them (every one is a false alarm)."""
    dets = [detector.detect([load_image(p)])[0] for p in images]
    out = {}
    for conf in confs:
        per_class = {c: 0 for c in classes}
        images_with_any = 0
        for d in dets:
            names = d.data["class_name"][(d.confidence >= conf) & np.isin(d.data["class_name"], list(classes))]
            images_with_any += bool(len(names))
            for n in names:
                per_class[str(n)] += 1
        total = sum(per_class.values())
        out[f"conf_{conf}"] = {
            "fp_per_image": round(total / max(len(images), 1), 4),
            "images_with_fp": images_with_any,
            "per_class": per_class,
        }
    out["images"] = len(images)
    return out


def recall_against_reference(student: Sequence[sv.Detections], reference: Sequence[sv.Detections], classes: Sequence[str], iou: float = 0.5) -> dict:
    """Per class: the share of the reference model's boxes that the student finds (same class, IoU >= `iou`).

    With the COCO model as reference this measures forgetting: 1.0 means the fine-tuned model still finds
    everything the COCO model found.
    """
    found = {c: 0 for c in classes}
    total = {c: 0 for c in classes}
    for s, r in zip(student, reference):
        for c in classes:
            rb = r.xyxy[r.data["class_name"] == c]
            sb = s.xyxy[s.data["class_name"] == c]
            total[c] += len(rb)
            if len(rb) and len(sb):
                m = box_iou(rb, sb)
                # greedy one-to-one matching, highest IoU first
                used_s: set[int] = set()
                for i in np.argsort(-m.max(axis=1)):
                    for j in np.argsort(-m[i]):
                        if m[i, j] < iou:
                            break
                        if j not in used_s:
                            used_s.add(j)
                            found[c] += 1
                            break
    per_class = {c: {"recall": round(found[c] / total[c], 4) if total[c] else None, "reference_boxes": total[c]} for c in classes}
    all_total = sum(total.values())
    return {"recall": round(sum(found.values()) / all_total, 4) if all_total else None, "per_class": per_class}


def latency_ms(detector: Detector, image: np.ndarray, runs: int = 20) -> dict:
    """Median and p90 milliseconds per single-image call, after two warm-up calls."""
    for _ in range(2):
        detector.detect([image])
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        detector.detect([image])
        times.append((time.perf_counter() - t) * 1000)
    return {"median_ms": round(float(np.median(times)), 1), "p90_ms": round(float(np.percentile(times, 90)), 1), "runs": runs}

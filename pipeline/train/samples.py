"""Reviewed cases become training samples: the review → samples → retrain step of the loop.

Each reviewed case contributes its best frame (already blurred) with labels:
- a *rejected* case (a false alarm) keeps every object the current model finds except the ones the
  violation was built on, which become background: the model learns that this post is not a bin;
- a *confirmed* case (dispatched or further) keeps the model's objects, the violation's included.

Everything else in the frame stays labelled, so a sample never teaches the model that a person or a car is
background. The output is a YOLO folder (`images/`, `labels/`, `samples.json` with provenance per image) that
`streetorder train --extra-data DIR` appends to the training set.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..cases import CaseStore
from ..detect import Detector
from ..formats.yolo import write_labels, xyxy_to_cxcywh
from ..geometry import box_iou
from ..images import ImageError, decode_image
from .classes import MERGED_CLASSES

CONFIRMED = ("dispatched", "rectified", "verified", "closed")


@dataclass
class SampleReport:
    negatives: int = 0
    positives: int = 0
    skipped: list[dict] = field(default_factory=list)


def _evidence_file(store: CaseStore, case, kind: str) -> Path | None:
    refs = [e for e in case.evidence if e.kind == kind and not e.purged]
    return store.evidence.path(refs[-1].sha256) if refs else None


def export_samples(store: CaseStore, detector: Detector, out: Path, classes: tuple[str, ...] = MERGED_CLASSES) -> SampleReport:
    """Write one sample per reviewed case with a best frame; returns counts and the cases skipped (and why)."""
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    report = SampleReport()
    manifest = []
    reviewed = [c for status in ("rejected", *CONFIRMED) for c in store.list(status=status)]
    for case in reviewed:
        frame_path, meta_path = _evidence_file(store, case, "best_frame"), _evidence_file(store, case, "metadata")
        if frame_path is None or meta_path is None:
            report.skipped.append({"case": case.id, "reason": "no best frame or metadata in the evidence store"})
            continue
        try:
            image = decode_image(frame_path.read_bytes(), f"case {case.id} best frame")  # stored by hash, no suffix
        except ImageError as e:
            report.skipped.append({"case": case.id, "reason": str(e)})
            continue
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        dets = detector.detect([image])[0]
        keep = np.isin(dets.data["class_name"], list(classes))
        if case.status == "rejected":
            for v in meta.get("detections", []):  # the false alarm's own boxes become background
                same = dets.data["class_name"] == v["class_name"]
                keep &= ~(same & (box_iou(dets.xyxy, [v["box"]])[:, 0] >= 0.5))
        d = dets[keep]
        h, w = image.shape[:2]
        rows = np.concatenate(
            [np.array([classes.index(n) for n in d.data["class_name"]], dtype=np.float32)[:, None], xyxy_to_cxcywh(d.xyxy / [w, h, w, h])], axis=1
        ) if len(d) else np.zeros((0, 5), np.float32)
        name = f"case{case.id}-{frame_path.name[:12]}"
        shutil.copyfile(frame_path, out / "images" / f"{name}.jpg")
        write_labels(out / "labels" / f"{name}.txt", rows)
        rejected = case.status == "rejected"
        report.negatives += rejected
        report.positives += not rejected
        note = next((e.note for e in reversed(case.history) if e.to_status == case.status), None)
        manifest.append({"image": f"images/{name}.jpg", "case": case.id, "type": case.type, "status": case.status, "review_note": note, "boxes": len(rows), "source_sha256": frame_path.name})
    (out / "samples.json").write_text(json.dumps({"classes": list(classes), "samples": manifest}, indent=2, ensure_ascii=False), encoding="utf-8")
    return report

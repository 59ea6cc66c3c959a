"""Build the merged training set: human street labels + COCO pseudo-labels + violation-free background streets.

Layout written under `out/`: `{train,val}/{images,labels}/`, images as symlinks to `../shared` (nothing is
copied), a `data.yaml` for ultralytics, and `build.json` with the counts behind every choice.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import yaml

from ..formats.yolo import LabelError, cxcywh_to_xyxy, label_path, list_images, read_labels, validate_yolo_folder, write_labels, xyxy_to_cxcywh
from ..samples.classes import MERGED_CLASSES, STREET_CLASSES, merged_id
from .pseudo_label import TeacherBox, run_teacher, select_pseudo_labels

# streets-in publishes its own classes; these map onto the merged model ('bike' is motorbikes and scooters).
STREETS_IN_TO_MERGED = {0: merged_id("motorcycle"), 2: merged_id("car")}


@dataclass(frozen=True)
class Sources:
    garbage_cn: Path
    streets_in: Path
    streets_split: Path  # YAML with `exclude` and `holdout` lists for streets-in

    def streets_split_lists(self) -> tuple[set[str], set[str]]:
        doc = yaml.safe_load(self.streets_split.read_text())
        return set(doc.get("exclude") or {}), set(doc.get("holdout") or [])

    def holdout_streets(self) -> list[Path]:
        excluded, holdout = self.streets_split_lists()
        return [p for p in list_images(self.streets_in / "images") if p.name in holdout and p.name not in excluded]


@dataclass
class BuildReport:
    pseudo_conf: float
    images: dict[str, int] = field(default_factory=dict)
    boxes: dict[str, dict[str, int]] = field(default_factory=dict)
    pseudo_dropped_overlap: int = 0
    streets_excluded: int = 0
    streets_holdout: int = 0


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.is_symlink() or dst.exists():
        dst.unlink()
    os.symlink(src.resolve(), dst)


def _rows(cls: list[int], xyxy: np.ndarray) -> np.ndarray:
    if len(cls) == 0:
        return np.zeros((0, 5), dtype=np.float32)
    return np.concatenate([np.array(cls, dtype=np.float32)[:, None], xyxy_to_cxcywh(np.clip(xyxy, 0, 1))], axis=1)


def _merge(human: np.ndarray, teacher: list[TeacherBox], conf: float, report: BuildReport) -> np.ndarray:
    """Human rows (merged ids) plus the teacher boxes that pass `select_pseudo_labels`."""
    human_xyxy = cxcywh_to_xyxy(human[:, 1:]) if len(human) else np.zeros((0, 4))
    kept, dropped = select_pseudo_labels(teacher, human_xyxy, conf)
    report.pseudo_dropped_overlap += dropped
    pseudo = _rows([b.cls for b in kept], np.array([b.xyxy for b in kept]).reshape(-1, 4))
    return np.concatenate([human, pseudo]) if len(human) else pseudo


def build_dataset(
    sources: Sources, out: Path, teacher_weights: Path, pseudo_conf: float, teacher_imgsz: int = 640, extra: tuple[Path, ...] = (),
    classes: tuple[str, ...] = MERGED_CLASSES, versions: tuple = (), val_filter=None, limit: int | None = None,
) -> BuildReport:
    """Write the merged dataset to `out` and return what went into it.

    `extra` folders are reviewed samples from `streetorder samples export` (images/ and labels/ in the merged
    class ids); they go into training as they are, once `validate_yolo_folder` finds nothing wrong with them
    (else LabelError lists every problem, file:line: reason, and nothing is built). `versions` are sample versions (`versions.py`): their non-holdout images, labels remapped to `classes` by name. `classes` may extend the merged list (new classes
    appended, `classes.py labelling_classes`); `val_filter(image) -> bool` keeps part of garbage-cn val (the
    rest is the retraining benchmark); `limit` caps garbage-cn and street images per split (quick loops).
    """
    if tuple(classes[: len(MERGED_CLASSES)]) != MERGED_CLASSES:
        raise ValueError("the training classes must start with the merged classes, in order (old ids stay)")
    out = Path(out)
    checks = [validate_yolo_folder(Path(folder) / "images", Path(folder) / "labels", len(MERGED_CLASSES)) for folder in extra]
    problems = [p for c in checks for p in c.problems]
    if problems:  # first, before the teacher runs: a bad label file is fixed, never trained on
        raise LabelError(problems)
    report = BuildReport(pseudo_conf=pseudo_conf)
    excluded, holdout = sources.streets_split_lists()
    report.streets_excluded, report.streets_holdout = len(excluded), len(holdout)

    gcn = {split: list_images(sources.garbage_cn / split / "images") for split in ("train", "val")}
    if val_filter is not None:
        gcn["val"] = [p for p in gcn["val"] if val_filter(p)]
    streets = [p for p in list_images(sources.streets_in / "images") if p.name not in excluded and p.name not in holdout]
    if limit is not None:
        gcn = {k: v[:limit] for k, v in gcn.items()}
        streets = streets[: max(1, limit // 10)]
    teacher = run_teacher(teacher_weights, gcn["train"] + gcn["val"] + streets, out / "teacher_cache.json", imgsz=teacher_imgsz)

    counts: dict[str, dict[str, int]] = {s: {n: 0 for n in classes} for s in ("train", "val")}

    def emit(split: str, prefix: str, image: Path, rows: np.ndarray) -> None:
        dst = out / split / "images" / f"{prefix}_{image.name}"
        _link(image, dst)
        write_labels(label_path(dst), rows)
        for c in rows[:, 0].astype(int):
            counts[split][classes[c]] += 1

    for split, images in gcn.items():
        for image in images:
            human = read_labels(label_path(image))  # garbage-cn ids are already merged ids (street classes first)
            assert human.size == 0 or human[:, 0].max() < len(STREET_CLASSES)
            emit(split, "gcn", image, _merge(human, teacher[image.name], pseudo_conf, report))
    for image in streets:
        published = read_labels(label_path(image))
        keep = np.isin(published[:, 0], list(STREETS_IN_TO_MERGED))
        human = published[keep].copy()
        human[:, 0] = [STREETS_IN_TO_MERGED[int(c)] for c in human[:, 0]]
        emit("train", "streets", image, _merge(human, teacher[image.name], pseudo_conf, report))

    reviewed = 0
    for i, check in enumerate(checks):
        for image, rows in check.pairs:
            emit("train", f"reviewed{i}", image, rows)
            reviewed += 1

    from .versions import remap_labels

    for v in versions:
        for image in v.images("train"):
            emit("train", f"sample-{v.name}", image, remap_labels(v, image, classes))
            reviewed += 1

    report.images = {"train_garbage_cn": len(gcn["train"]), "train_background_streets": len(streets), "val_garbage_cn": len(gcn["val"])}
    if extra or versions:
        report.images["train_reviewed_samples"] = reviewed
    report.boxes = counts
    data = {"path": str(out.resolve()), "train": "train/images", "val": "val/images", "names": dict(enumerate(classes))}
    (out / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    (out / "build.json").write_text(json.dumps(asdict(report), indent=2))
    return report

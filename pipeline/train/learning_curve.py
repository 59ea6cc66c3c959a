"""How many labels does a city need for a new class? A learning curve on a class that has real labels.

Stall classes have no labelled data yet, so garbage-cn's `overflow` stands in: the COCO model (which does not
know it) gets one head row with `extend_classes`, exactly what `streetorder retrain` does for a class added in
`datasets/classes.yaml`, is fine-tuned on N labelled images per budget, and is scored on garbage-cn val (never
trained on). Picks are one seeded shuffle cut at each budget, so a larger set holds every smaller one and the
curve measures more labels, not different images.

Labels of a training image: its boxes of the class (id 80 in the grown head) and COCO pseudo-labels of the
classes the rules read (`COCO_KEEP`: person, bicycle, ...) from the COCO model itself, as `streetorder train`
makes them (`run_teacher`, `select_pseudo_labels`). Without them every person and motorbike in the picked
frames would be taught as background and the cue classes the vending rule needs would be unlearnt; the other
COCO classes go unlabelled (the product does not use them). Other garbage-cn objects (garbage, bins) are not
labelled, as a reviewer boxing a new class boxes only that; their boxes only keep teacher boxes off them (a bin
the teacher calls a chair is not labelled chair). Background streets (streets-in, training side, half as many
as the budget) carry pseudo-labels only, so the new class is not learnt as "anything in a street".

Every budget trains for the same number of steps (the largest set's `epochs`, so smaller sets run more
epochs): with equal epochs a 25-image set would get an eighth of the updates and the curve would measure
training length instead of labels. The optimizer is AdamW at lr0 0.001 (what ultralytics' own rule, 0.002 * 5 /
(4 + nc), gives a 6-class head): left on `auto`, the rule gives the 81-class head 0.000118, and in a run this
short the new row stays at its prior (measured: AP50 0.0 after 10 epochs on 100 labels, 0.47 at 0.001).
Needs the train extra.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import yaml

from ..detect.ultralytics import import_yolo  # importing it sets YOLO_OFFLINE before any import of ultralytics
from ..formats.yolo import cxcywh_to_xyxy, label_path, list_images, load_data_yaml, read_labels, write_labels
from ..paths import SHARED, SHARED_DATA, STREETS_SPLIT
from ..samples.classes import COCO_KEEP, COCO_TO_MERGED
from .dataset import Sources, _link, _rows
from .pseudo_label import TeacherBox, run_teacher, select_pseudo_labels

MERGED_TO_COCO = {merged: coco for coco, merged in COCO_TO_MERGED.items()}
LR0 = 0.001  # see the module docstring
CKPT_VAL_IMAGES = 8  # ultralytics validates the last epoch on something; results come from `evaluate_model`


@dataclass(frozen=True)
class CurveConfig:
    budgets: tuple[int, ...] = (25, 50, 100, 200)
    epochs: int = 15  # for the largest budget; smaller ones run as many steps
    imgsz: int = 320
    batch: int = 16
    val_images: int | None = None  # None: all of garbage-cn val; else a seeded subset of this size
    background_share: float = 0.5  # background streets per labelled image
    seed: int = 0
    class_name: str = "overflow"
    garbage_cn: Path = SHARED_DATA / "garbage-cn"
    streets_in: Path = SHARED_DATA / "streets-in"
    streets_split: Path = STREETS_SPLIT
    base: Path = SHARED / "models" / "yolo11n-coco.pt"
    pseudo_conf: float = 0.4
    teacher_imgsz: int = 640
    threads: int = os.cpu_count() or 1
    workdir: Path = Path("var/learning-curve")


@dataclass(frozen=True)
class BudgetResult:
    budget: int  # labelled images holding the class
    background_images: int
    labelled_boxes: int  # boxes of the class in the labelled images
    pseudo_boxes: int  # COCO pseudo-labels over all training images
    epochs: int
    train_seconds: float
    ap50: float | None
    ap50_95: float | None


@dataclass(frozen=True)
class CurveResult:
    class_name: str
    base: str
    imgsz: int
    seed: int
    val_images: int
    val_boxes: int
    budgets: list[BudgetResult] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def pick_images(cfg: CurveConfig) -> tuple[list[Path], list[Path]]:
    """Train images holding the class and training-side streets, each in one seeded order: budget N takes the
    first N (and the first N * background_share streets), so the same seed gives the same, nested sets."""
    cid = _class_id(cfg)
    labelled = [p for p in list_images(cfg.garbage_cn / "train" / "images") if (read_labels(label_path(p))[:, 0] == cid).any()]
    excluded, holdout = Sources(cfg.garbage_cn, cfg.streets_in, cfg.streets_split).streets_split_lists()
    streets = [p for p in list_images(cfg.streets_in / "images") if p.name not in excluded and p.name not in holdout]
    random.Random(cfg.seed).shuffle(labelled)
    random.Random(cfg.seed).shuffle(streets)
    need = max(cfg.budgets) + CKPT_VAL_IMAGES
    if len(labelled) < need:
        raise ValueError(f"garbage-cn train has {len(labelled)} images with '{cfg.class_name}'; budgets up to {max(cfg.budgets)} need {need}")
    return labelled, streets


def run_curve(cfg: CurveConfig, log: Callable[[str], None] = print) -> CurveResult:
    """Train and score one model per budget (ascending); the work folders stay under `cfg.workdir`."""
    from .evaluate import evaluate_model
    from .extend import extend_classes

    budgets = sorted(set(cfg.budgets))
    if not budgets or budgets[0] < 1:
        raise ValueError(f"budgets must be positive, got {cfg.budgets}")
    work = cfg.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    labelled, streets = pick_images(cfg)
    backgrounds = {n: streets[: int(n * cfg.background_share)] for n in budgets}
    cid, init = _class_id(cfg), work / "init.pt"
    names = [*_coco_names(cfg.base), cfg.class_name]
    extend_classes(cfg.base, init, names)
    new_id = len(names) - 1

    used = labelled[: budgets[-1]] + backgrounds[budgets[-1]]
    teacher = run_teacher(cfg.base, used, work / "teacher_cache.json", imgsz=cfg.teacher_imgsz)
    ckpt_val = _folder(work / "ckpt-val", [(p, _own(p, cid, new_id)) for p in labelled[-CKPT_VAL_IMAGES:]])
    eval_yaml, val_images, val_boxes = _eval_set(cfg, work / "eval", cid)

    set_sizes = {n: n + len(backgrounds[n]) for n in budgets}
    results = []
    for n in budgets:
        pairs = [(p, _labels(p, teacher[p.name], cid, new_id, cfg.pseudo_conf)) for p in labelled[:n]]
        pairs += [(p, _labels(p, teacher[p.name], None, new_id, cfg.pseudo_conf)) for p in backgrounds[n]]
        folder = _folder(work / f"n{n:04d}", pairs)
        data = folder / "data.yaml"
        data.write_text(yaml.safe_dump({"path": str(folder), "train": "images", "val": str(ckpt_val / "images"), "names": dict(enumerate(names))}))
        epochs = max(1, round(cfg.epochs * math.ceil(set_sizes[budgets[-1]] / cfg.batch) / math.ceil(set_sizes[n] / cfg.batch)))
        log(f"budget {n}: {len(pairs)} images, {epochs} epochs")
        t = time.perf_counter()
        weights = _fit(cfg, init, data, work / "runs", f"n{n:04d}", epochs)
        seconds = round(time.perf_counter() - t, 1)
        r = evaluate_model(eval_yaml, weights, split="val", backend="ultralytics", imgsz=cfg.imgsz, progress=False)["per_class"][cfg.class_name]
        boxes = [int((rows[:, 0] == new_id).sum()) for _, rows in pairs]
        results.append(BudgetResult(n, len(backgrounds[n]), sum(boxes), sum(len(rows) for _, rows in pairs) - sum(boxes), epochs, seconds, r["map50"], r["map50_95"]))
        log(f"budget {n}: AP50 {r['map50']}, AP50-95 {r['map50_95']}, {seconds} s")
    return CurveResult(cfg.class_name, cfg.base.name, cfg.imgsz, cfg.seed, val_images, val_boxes, results)


def _class_id(cfg: CurveConfig) -> int:
    names = load_data_yaml(cfg.garbage_cn / "data.yaml").names
    if cfg.class_name not in names:
        raise ValueError(f"'{cfg.class_name}' is not a garbage-cn class ({', '.join(names)})")
    return names.index(cfg.class_name)


def _coco_names(base: Path) -> list[str]:
    """The base model's classes; pseudo-labels use COCO ids, so the rules' classes must sit where COCO has them."""
    YOLO = import_yolo()

    names = YOLO(str(base)).names
    out = [names[i] for i in range(len(names))]
    if any(out[i] != name for i, name in COCO_KEEP.items()):
        raise ValueError(f"{base} does not have the COCO classes at their COCO ids")
    return out


def _own(image: Path, cid: int, new_id: int) -> np.ndarray:
    rows = read_labels(label_path(image))
    rows = rows[rows[:, 0] == cid].copy()
    rows[:, 0] = new_id
    return rows


def _labels(image: Path, teacher: Sequence[TeacherBox], cid: int | None, new_id: int, conf: float) -> np.ndarray:
    """The class's boxes (none for a background street) plus teacher boxes off every human-labelled object."""
    human = read_labels(label_path(image)) if cid is not None else np.zeros((0, 5), dtype=np.float32)
    kept, _ = select_pseudo_labels(list(teacher), cxcywh_to_xyxy(human[:, 1:]), conf)
    pseudo = _rows([MERGED_TO_COCO[b.cls] for b in kept], np.array([b.xyxy for b in kept]).reshape(-1, 4))
    own = _own(image, cid, new_id) if cid is not None else np.zeros((0, 5), dtype=np.float32)
    return np.concatenate([own, pseudo])


def _folder(root: Path, pairs: Sequence[tuple[Path, np.ndarray]]) -> Path:
    """A fresh YOLO folder: images/ as symlinks (prefixed by source, file names may clash), labels/ written."""
    shutil.rmtree(root, ignore_errors=True)
    for image, rows in pairs:
        dst = root / "images" / f"{image.parent.parent.name}_{image.name}"
        _link(image, dst)
        write_labels(label_path(dst), rows)
    return root


def _eval_set(cfg: CurveConfig, root: Path, cid: int) -> tuple[Path, int, int]:
    """garbage-cn val (or a seeded subset) with only the class's boxes, as a one-class dataset: images without
    it stay, as the negatives a model must not fire on."""
    images = list_images(cfg.garbage_cn / "val" / "images")
    if cfg.val_images is not None and cfg.val_images < len(images):
        images = sorted(random.Random(cfg.seed).sample(images, cfg.val_images))
    pairs = [(p, _own(p, cid, 0)) for p in images]
    _folder(root, pairs)
    path = root / "data.yaml"
    path.write_text(yaml.safe_dump({"path": str(root), "train": "images", "val": "images", "names": {0: cfg.class_name}}))
    return path, len(images), sum(len(rows) for _, rows in pairs)


def _fit(cfg: CurveConfig, init: Path, data: Path, project: Path, name: str, epochs: int) -> Path:
    """Fine-tune as `streetorder train` does on a CPU (its trainer, no night augmentation, one process), with
    validation only at the end on a few held-apart train images; the last epoch's weights are scored."""
    YOLO = import_yolo()

    from .trainer import _street_trainer

    shutil.rmtree(project / name, ignore_errors=True)
    YOLO(str(init)).train(
        trainer=_street_trainer(0.0, 0, cfg.threads), data=str(data), imgsz=cfg.imgsz, epochs=epochs, close_mosaic=min(2, epochs),
        batch=cfg.batch, optimizer="AdamW", lr0=LR0, seed=cfg.seed, deterministic=True, workers=0, device="cpu", cache=False, val=False, plots=False, amp=False,
        project=str(project), name=name, exist_ok=True, verbose=False,
    )
    last = project / name / "weights" / "last.pt"
    if not last.exists():
        raise RuntimeError(f"training finished without {last}")
    return last


def card_entry(result: dict, command: str) -> dict:
    """The curve as a model card keeps it: the result, the command that made it, the machine, and what it means
    for planning labels (read off the figures, not written by hand)."""
    import os
    import platform

    b = {r["budget"]: r["ap50"] for r in result["budgets"]}
    budgets = sorted(b)
    best = max(budgets, key=lambda n: b[n])
    enough = next((n for n in budgets if b[n] >= b[best] - 0.05), best)
    reading = (
        f"For planning stall labels: {enough} labelled images came within 0.05 AP50 of the best budget here ({b[enough]} against {b[best]} at {best}); "
        f"{budgets[0]} gave {b[budgets[0]]}. One run per budget, so a few points of AP50 are noise; a class that looks less distinct than "
        f"`{result['class_name']}` may need more. Further labels are better spent on the frames `samples select` picks."
    )
    return {"result": result, "command": command, "machine": f"{os.cpu_count()} CPU cores ({platform.machine()}), no GPU", "reading": reading}

"""Does `samples select` pick better frames than chance? A small, honest experiment on garbage-cn.

A starting model is trained on a small labelled subset of garbage-cn train; the rest of train is the unlabelled
pool. The same budget is then chosen from the pool by `select_frames` and at random (several seeds); the
starting model is fine-tuned on subset + chosen frames with identical settings, and every arm is scored on the
fixed garbage-cn val (never trained on). Each stage is cached under `workdir`, so an interrupted run resumes.

Run: `streetorder samples experiment [--json]` (train extra; CPU-bound, tens of minutes on 2 cores).
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from ..detect.ultralytics import import_yolo  # importing it sets YOLO_OFFLINE before any import of ultralytics
from ..formats.yolo import label_path, list_images
from ..paths import SHARED_DATA


@dataclass(frozen=True)
class ExperimentConfig:
    garbage_cn: Path = SHARED_DATA / "garbage-cn"
    base: Path = SHARED_DATA.parent / "models" / "yolo11n-coco.pt"
    workdir: Path = Path("var/select-experiment")
    start_images: int = 150
    pool_images: int = 700
    budget: int = 100
    random_seeds: tuple[int, ...] = (0, 1, 2)
    imgsz: int = 320
    start_epochs: int = 5
    finetune_epochs: int = 3
    batch: int = 16
    split_seed: int = 0
    threads: int = 2


def _split(cfg: ExperimentConfig) -> tuple[list[Path], list[Path], list[Path]]:
    """Fixed subsets of garbage-cn train: start (labelled), pool (unlabelled), and a small val for checkpoints."""
    images = list_images(cfg.garbage_cn / "train" / "images")
    random.Random(cfg.split_seed).shuffle(images)
    start = images[: cfg.start_images]
    pool = images[cfg.start_images : cfg.start_images + cfg.pool_images]
    ckpt_val = images[cfg.start_images + cfg.pool_images : cfg.start_images + cfg.pool_images + 40]
    return start, pool, ckpt_val


def _folder(root: Path, images: list[Path]) -> Path:
    """A YOLO folder of symlinks (images/ and labels/), so ultralytics finds the labels beside the images."""
    for sub in ("images", "labels"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for p in images:
        for src, dst in ((p, root / "images" / p.name), (label_path(p), root / "labels" / label_path(p).name)):
            if not dst.exists() and src.exists():
                os.symlink(src.resolve(), dst)
    return root


def _data_yaml(cfg: ExperimentConfig, name: str, train: list[Path], val: list[Path]) -> Path:
    root = cfg.workdir.resolve() / "data" / name
    _folder(root / "train", train)
    _folder(root / "val", val)
    names = yaml.safe_load((cfg.garbage_cn / "data.yaml").read_text())["names"]
    path = root / "data.yaml"
    path.write_text(yaml.safe_dump({"path": str(root), "train": "train/images", "val": "val/images", "names": names}))
    return path


def _fit(cfg: ExperimentConfig, name: str, init: Path, data: Path, epochs: int, warmup: float) -> Path:
    best = cfg.workdir.resolve() / "runs" / name / "weights" / "best.pt"
    if best.exists():
        return best
    YOLO = import_yolo()

    from .trainer import _street_trainer

    YOLO(str(init)).train(
        trainer=_street_trainer(0.0, 1, cfg.threads), data=str(data), imgsz=cfg.imgsz, epochs=epochs, close_mosaic=0,
        warmup_epochs=warmup, batch=cfg.batch, seed=0, deterministic=True, workers=1, device="cpu", plots=False, amp=False,
        project=str(cfg.workdir.resolve() / "runs"), name=name, exist_ok=True, verbose=False,
    )
    return best


def _onnx(cfg: ExperimentConfig, weights: Path) -> Path:
    onnx = weights.with_suffix(".onnx")
    if not onnx.exists():
        YOLO = import_yolo()

        YOLO(str(weights)).export(format="onnx", imgsz=cfg.imgsz, dynamic=True, simplify=True, opset=17, device="cpu")
    return onnx


def _score(cfg: ExperimentConfig, weights: Path) -> dict:
    cache = weights.parent / "heldout.json"
    if cache.exists():
        return json.loads(cache.read_text())
    from .evaluate import evaluate_model

    r = evaluate_model(cfg.garbage_cn / "data.yaml", weights, split="val", backend="ultralytics", imgsz=cfg.imgsz, progress=False)
    out = {"map50": r["map50"], "map50_95": r["map50_95"], "per_class": {k: v["map50"] for k, v in r["per_class"].items()}, "images": r["images"]}
    cache.write_text(json.dumps(out))
    return out


def run_experiment(cfg: ExperimentConfig, stages: tuple[str, ...] = ("start", "arms")) -> dict:
    cfg.workdir.mkdir(parents=True, exist_ok=True)
    stamp = cfg.workdir / "config.json"  # cached stages are only valid for the config that made them
    mine = json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items() if k != "random_seeds"}, sort_keys=True)
    if stamp.exists() and stamp.read_text() != mine:
        raise ValueError(f"{cfg.workdir} holds an experiment with other settings ({stamp.read_text()}); remove it or use another workdir")
    stamp.write_text(mine)
    start, pool, ckpt_val = _split(cfg)
    m0 = _fit(cfg, "start", cfg.base, _data_yaml(cfg, "start", start, ckpt_val), cfg.start_epochs, 1.0)
    report: dict = {"config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()}, "start": _score(cfg, m0)}
    if "arms" not in stages:
        return report
    from .select import SelectConfig, select_frames

    chosen: dict[str, list[Path]] = {}
    sel_cache = cfg.workdir / "selected.json"
    if sel_cache.exists():
        chosen["select"] = [Path(p) for p in json.loads(sel_cache.read_text())]
    else:
        picks = select_frames(_onnx(cfg, m0), pool, SelectConfig(budget=cfg.budget), train_images=start, threads=cfg.threads)
        chosen["select"] = [c.image for c in picks]
        sel_cache.write_text(json.dumps([str(p) for p in chosen["select"]]))
    for seed in cfg.random_seeds:
        chosen[f"random_seed{seed}"] = random.Random(1000 + seed).sample(pool, cfg.budget)
    arms = {}
    for arm, picked in chosen.items():
        data = _data_yaml(cfg, arm, start + picked, ckpt_val)
        weights = _fit(cfg, arm, m0, data, cfg.finetune_epochs, 0.0)
        arms[arm] = _score(cfg, weights) | {"boxes_labelled": sum(_boxes(p) for p in picked)}
    report["arms"] = arms
    randoms = [a["map50"] for k, a in arms.items() if k.startswith("random")]
    report["summary"] = {
        "select_map50": arms["select"]["map50"],
        "random_map50_mean": round(sum(randoms) / len(randoms), 4),
        "random_map50_range": [min(randoms), max(randoms)],
        "start_map50": report["start"]["map50"],
    }
    boxes = {k: a["boxes_labelled"] for k, a in arms.items()}
    rb = [v for k, v in boxes.items() if k.startswith("random")]
    report["summary"]["boxes_select"], report["summary"]["boxes_random_mean"] = boxes["select"], round(sum(rb) / len(rb), 1)
    report["verdict"] = verdict(report["summary"], len(randoms))
    (cfg.workdir / "report.json").write_text(json.dumps(report, indent=2))
    return report


def verdict(s: dict, n_random: int) -> str:
    """One honest sentence: a win only when select beats every random draw; one run of each, a small set."""
    sel, lo, hi, mean = s["select_map50"], *s["random_map50_range"], s["random_map50_mean"]
    caveat = (f"One fine-tune per arm ({n_random} random draws), so training noise is not averaged out; a small experiment, not a proof. "
              f"The chosen frames hold {s['boxes_select']} boxes against {s['boxes_random_mean']} for random on average: part of the gain may be more labels per frame, "
              "which also costs the annotator more.")
    if sel > hi:
        return f"**select beat every random draw**: mAP50 {sel} vs {mean} mean of random ({lo}-{hi}), +{round(sel - mean, 4)}. {caveat}"
    if sel >= lo:
        return f"**select was within the range of random draws**: mAP50 {sel} vs random {lo}-{hi} (mean {mean}); no advantage shown at this size. {caveat}"
    return f"**select did worse than every random draw**: mAP50 {sel} vs random {lo}-{hi} (mean {mean}). {caveat}"


def add_to_card(report: dict, folder: Path) -> None:
    """Store the experiment in `folder/card.json` and re-render its README (the model card)."""
    from .card import add_to_card as store

    store(folder, "selection_experiment", report)


def _boxes(image: Path) -> int:
    p = label_path(image)
    return sum(1 for line in p.read_text().splitlines() if line.strip()) if p.exists() else 0


if __name__ == "__main__":
    import sys

    stages = tuple(sys.argv[1].split(",")) if len(sys.argv) > 1 else ("start", "arms")
    print(json.dumps(run_experiment(ExperimentConfig(), stages), indent=2))

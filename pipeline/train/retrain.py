"""`streetorder retrain`: fine-tune the current model on the base data plus every sample version.

The current model (models/CURRENT) is the starting point; classes added in `datasets/classes.yaml` are
appended to its head first (`extend.py`), so old ids and what the model knows about them stay. Base data is
built as for `streetorder train` (garbage-cn human labels, COCO teacher pseudo-labels that keep the COCO
classes alive, background streets), with garbage-cn val cut in two: one half validates the checkpoints, the
other is the benchmark (`benchmark.py`) and never seen. Every sample version's non-holdout images join
training with labels remapped by class name. The card records the exact command and every data version.
"""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from ..detect.registry import current_name, resolve_model
from ..paths import SHARED, SHARED_DATA, STREETS_SPLIT
from ..samples.classes import MERGED_CLASSES, STREET_CLASSES, labelling_classes


class RetrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(None, description="New version name (default: the next street-vN)")
    models_dir: Path = Field(Path("models"), description="Models folder holding CURRENT")
    samples_root: Path | None = Field(None, description="Sample versions root (default $STREETORDER_SAMPLES or var/samples)")
    classes_file: Path | None = Field(None, description="Added classes (default datasets/classes.yaml)")
    shared_data: Path = Field(SHARED_DATA, description="Folder with garbage-cn/ and streets-in/")
    teacher: Path = Field(SHARED / "models" / "yolo11n-coco.pt", description="COCO teacher for pseudo-labels")
    pseudo_conf: float = Field(0.4, ge=0.05, le=0.95)
    imgsz: int | None = Field(None, ge=32, le=1280, multiple_of=32, description="Training size (default: the current model's)")
    epochs: int = Field(5, ge=1)
    batch: int = Field(16, ge=1)
    limit: int | None = Field(None, ge=1, description="At most this many garbage-cn images per split (a quick loop)")
    teacher_imgsz: int = Field(640, ge=32, multiple_of=32)
    seed: int = 0
    workers: int = Field(2, ge=0)
    threads: int | None = Field(None, ge=1)
    device: str = "cpu"
    workdir: Path = Field(Path("var/train"))
    variants: bool = Field(True, description="Build the INT8 variant and gate it and bf16 (`streetorder models quantize`), as for every served model")


def next_name(models_dir: Path) -> str:
    nums = [int(m.group(1)) for p in Path(models_dir).iterdir() if (m := re.fullmatch(r"street-v(\d+)", p.name))] if Path(models_dir).is_dir() else []
    return f"street-v{max(nums, default=0) + 1}"


def retrain(cfg: RetrainConfig, command: str) -> dict:
    """Train, export and write models/<name>/ with its card; returns the card."""
    import os

    from .dataset import Sources, build_dataset
    from .extend import extend_classes
    from .trainer import TrainConfig, export, fit
    from .versions import find_versions

    parent = current_name(cfg.models_dir)
    parent_ref = resolve_model(cfg.models_dir / parent)
    if parent_ref.pt is None:
        raise FileNotFoundError(f"current model '{parent}' has no model.pt to fine-tune from")
    name = cfg.name or next_name(cfg.models_dir)
    if (cfg.models_dir / name).exists():
        raise FileExistsError(f"{cfg.models_dir / name} exists; a version is never overwritten (choose another --name)")
    classes = labelling_classes(cfg.classes_file)
    imgsz = cfg.imgsz or int(parent_ref.card.get("imgsz") or 320)
    tc = TrainConfig(
        name=name, base=cfg.teacher, garbage_cn=cfg.shared_data / "garbage-cn", streets_in=cfg.shared_data / "streets-in", streets_split=STREETS_SPLIT,
        pseudo_conf=cfg.pseudo_conf, imgsz=imgsz, epochs=cfg.epochs, close_mosaic=min(2, cfg.epochs), warmup_epochs=0.0, batch=cfg.batch,
        seed=cfg.seed, night_p=0.3, workers=cfg.workers, threads=cfg.threads or os.cpu_count() or 1, device=cfg.device, workdir=cfg.workdir,
        models_dir=cfg.models_dir, init=cfg.workdir / name / "init.pt",
    )
    tc.run_dir.mkdir(parents=True, exist_ok=True)
    added = extend_classes(parent_ref.pt, tc.init, classes)
    versions = find_versions(cfg.samples_root)
    from .benchmark import in_benchmark

    report = build_dataset(
        Sources(tc.garbage_cn, tc.streets_in, tc.streets_split), tc.data_dir, tc.base, tc.pseudo_conf, teacher_imgsz=cfg.teacher_imgsz,
        classes=classes, versions=tuple(versions), val_filter=lambda p: not in_benchmark(p), limit=cfg.limit,
    )
    best = fit(tc)
    pt, onnx = export(tc, best)
    from .card import environment, _training_log

    card = {
        "name": name,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "architecture": parent_ref.card.get("architecture", "YOLO11n"),
        "imgsz": imgsz,
        "classes": list(classes),
        "street_classes": list(parent_ref.card.get("street_classes") or STREET_CLASSES) + [c for c in classes if c not in MERGED_CLASSES],  # the cue model never serves an added class
        "added_classes": added,
        "files": {"onnx": "model.onnx", "pt": "model.pt"},
        **({"cue_model": parent_ref.card["cue_model"]} if parent_ref.card.get("cue_model") else {}),
        "parent": parent,
        "data": parent_ref.card.get("data", []),
        "dataset_build": json.loads((tc.data_dir / "build.json").read_text()),
        "training": {
            "command": command,
            "retrain_config": json.loads(cfg.model_dump_json()),
            "config": json.loads(tc.model_dump_json()),
            "data_versions": {
                "base": {"garbage_cn": str(tc.garbage_cn), "streets_in": str(tc.streets_in), "streets_split": str(tc.streets_split),
                         "val": "garbage-cn val, the half outside the benchmark (crc32(name) odd)", "limit": cfg.limit},
                "sample_versions": [v.describe() for v in versions],
                "benchmark_excluded": "garbage-cn val crc32(name) even; 1 in 5 images of every sample version; streets-in holdout",
            },
            "environment": environment(),
        } | _training_log(tc),
    }
    (tc.out_dir / "card.json").write_text(json.dumps(card, indent=2, ensure_ascii=False))
    (tc.out_dir / "README.md").write_text(render_retrained(card))
    shutil.copyfile(tc.run_dir / "runs" / "fit" / "results.csv", tc.out_dir / "results.csv") if (tc.run_dir / "runs" / "fit" / "results.csv").exists() else None
    if cfg.variants:
        from .gate_sets import GateSets
        from .quantize import CALIBRATION_IMAGES, quantize_model

        # a quick loop (--limit) gates on as few images as it trained on; the card says which sets were used
        card["variants"] = quantize_model(
            tc.out_dir, shared=cfg.shared_data.parent, calibration=min(CALIBRATION_IMAGES, 4 * cfg.limit) if cfg.limit else CALIBRATION_IMAGES,
            sets=GateSets(cfg.shared_data.parent, cfg.limit), threads=cfg.threads,
        )
    return card


def render_retrained(card: dict) -> str:
    t = card["training"]
    lines = [
        f"# {card['name']}: retrained from {card['parent']} ({card['architecture']}, {card['imgsz']} px)",
        "",
        "Generated by `streetorder retrain` from `card.json`; the gate's verdict is added by `streetorder promote`.",
        "",
        "## Classes",
        ", ".join(f"{i} `{c}`" for i, c in enumerate(card["classes"])) + (f". Added in this version: {', '.join(card['added_classes'])}." if card["added_classes"] else "."),
        "",
        "## Command",
        "```",
        t["command"],
        "```",
        "",
        "## Data versions",
        f"- base: {json.dumps(t['data_versions']['base'], ensure_ascii=False)}",
        *[f"- sample version `{v['name']}` (manifest sha256 {v['manifest_sha256'][:12]}): {v['train']} images trained, {v['holdout']} held out for the benchmark" for v in t["data_versions"]["sample_versions"]],
        f"- never trained on: {t['data_versions']['benchmark_excluded']}",
        "",
        f"Images: {json.dumps(card['dataset_build'].get('images', {}))}. Epochs run: {t.get('epochs_run', '–')}, {t.get('train_seconds', '–')} s.",
    ]
    gate = card.get("gate")
    if gate:
        lines += ["", f"## Gate against {gate['against']} ({gate['benchmark']['name']} {gate['benchmark']['key']}): {'PASSED' if gate['verdict']['promote'] else 'REFUSED'}"]
        lines += [f"- {'ok' if c['passed'] else 'FAIL'} {c['check']}: {c['detail']}" for c in gate["verdict"]["checks"]]
    if card.get("variants"):
        from .quantize import variants_markdown

        lines += ["", variants_markdown(card)]
    return "\n".join(lines) + "\n"

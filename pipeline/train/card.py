"""Measure a trained model and write its model card (`card.json` for machines, `README.md` for people)."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timezone
from pathlib import Path

from ..detect import DetectorSettings
from ..detect.onnx import OnnxDetector
from ..formats.yolo import list_images
from ..images import load_image
from .classes import COCO_KEEP, MERGED_CLASSES, STREET_CLASSES
from .dataset import Sources
from .evaluate import evaluate_model
from .measure import false_positives_per_image, latency_ms, recall_against_reference
from .run import OPERATING_CONF, environment
from .trainer import TrainConfig

# The bar for a shippable v1: mean mAP50 over garbage, garbage_bin and overflow on garbage-cn val.
TARGET_STREET_MAP50 = 0.65
# Below this recall against the teacher, a kept COCO class is called out as forgotten.
WEAK_RECALL = 0.3

DATA_LICENCES = [
    {"name": "garbage-cn", "use": "street-class labels (human); train and val", "source": "Roboflow '公开数据集111' v2 via GitHub ATANU0023/garbage_detection_dataset", "licence": "CC BY 4.0"},
    {"name": "streets-in", "use": "background (negative) street images, motorcycle/car labels; a held-out part measures false alarms", "source": "Roboflow 'modes-of-transport' v1 via GitHub nervewastaken/VehicleDetection", "licence": "CC BY 4.0"},
    {"name": "yolo11n-coco", "use": "starting weights and pseudo-label teacher for the COCO classes", "source": "Ultralytics YOLO11n (COCO)", "licence": "AGPL-3.0"},
]


def _training_log(cfg: TrainConfig) -> dict:
    results = cfg.run_dir / "runs" / "fit" / "results.csv"
    if not results.exists():
        return {}
    rows = list(csv.DictReader(results.open()))
    rows = [{k.strip(): v for k, v in r.items()} for r in rows]
    best = max(rows, key=lambda r: 0.1 * float(r["metrics/mAP50(B)"]) + 0.9 * float(r["metrics/mAP50-95(B)"]))
    return {
        "epochs_run": len(rows),
        "best_epoch": int(best["epoch"]),
        "train_seconds": round(float(rows[-1].get("time", 0) or 0)),
        "ultralytics_val_all_classes_at_best": {"map50": round(float(best["metrics/mAP50(B)"]), 4), "map50_95": round(float(best["metrics/mAP50-95(B)"]), 4)},
    }


def measure(cfg: TrainConfig) -> dict:
    onnx = cfg.out_dir / "model.onnx"
    gcn_yaml = cfg.garbage_cn / "data.yaml"
    sources = Sources(cfg.garbage_cn, cfg.streets_in, cfg.streets_split)
    metrics: dict = {
        "garbage_cn_val": evaluate_model(gcn_yaml, cfg.out_dir),
        "garbage_cn_val_night": evaluate_model(gcn_yaml, cfg.out_dir, night=True),
    }

    street = OnnxDetector(onnx, DetectorSettings(conf=OPERATING_CONF, classes=STREET_CLASSES))
    metrics["false_positives_unseen_streets"] = false_positives_per_image(street, sources.holdout_streets(), STREET_CLASSES)

    from ..detect.ultralytics import UltralyticsDetector

    coco_names = tuple(COCO_KEEP.values())
    val_images = list_images(cfg.garbage_cn / "val" / "images")
    teacher = UltralyticsDetector(cfg.base, DetectorSettings(conf=cfg.pseudo_conf, imgsz=640, classes=coco_names))
    student = OnnxDetector(onnx, DetectorSettings(conf=OPERATING_CONF, classes=coco_names))
    # The COCO model itself at the student's smaller input size: the recall that size alone costs, so the
    # student's gap to it is what fine-tuning forgot.
    baseline = UltralyticsDetector(cfg.base, DetectorSettings(conf=OPERATING_CONF, imgsz=cfg.imgsz, classes=coco_names))
    ref, got, same_size = [], [], []
    for p in val_images:
        image = load_image(p)
        ref += teacher.detect([image])
        got += student.detect([image])
        same_size += baseline.detect([image])
    metrics["coco_recall_vs_teacher"] = recall_against_reference(got, ref, coco_names) | {
        "reference": f"COCO model at imgsz 640, score >= {cfg.pseudo_conf} (the pseudo-label rule)",
        "student": f"this model at its imgsz, score >= {OPERATING_CONF}",
        "images": f"garbage-cn val ({len(val_images)})",
        "coco_model_at_student_imgsz": recall_against_reference(same_size, ref, coco_names),
    }
    metrics["latency_onnx_cpu"] = latency_ms(OnnxDetector(onnx), load_image(val_images[0])) | {"batch": 1, "imgsz": cfg.imgsz}
    return metrics


def write_card(cfg: TrainConfig, command: str) -> dict:
    build = json.loads((cfg.data_dir / "build.json").read_text()) if (cfg.data_dir / "build.json").exists() else {}
    card = {
        "name": cfg.name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "architecture": "YOLO11n",
        "imgsz": cfg.imgsz,
        "classes": list(MERGED_CLASSES),
        "street_classes": list(STREET_CLASSES),
        "files": {"onnx": "model.onnx", "pt": "model.pt"},
        "data": DATA_LICENCES,
        "dataset_build": build,
        "training": {"command": command, "config": json.loads(cfg.model_dump_json()), "environment": environment()} | _training_log(cfg),
        "metrics": measure(cfg),
    }
    (cfg.out_dir / "card.json").write_text(json.dumps(card, indent=2, ensure_ascii=False))
    (cfg.out_dir / "README.md").write_text(render_markdown(card))
    return card


def _fmt(x) -> str:
    return "–" if x is None else f"{x:.3f}"


def _forgotten(per_class: dict) -> list[str]:
    """Name the kept classes this model mostly lost: the rules that use them are weaker until a retrain fixes it."""
    weak = [c for c, v in per_class.items() if v["recall"] is not None and v["recall"] < WEAK_RECALL]
    if not weak:
        return []
    return [
        f"**Mostly forgotten** (recall < {WEAK_RECALL}): {', '.join(weak)}. Rules whose evidence uses them (vending: umbrella, "
        "bench, chair, dining table) see them only at low scores; lower that camera's `min_score` or retrain with more examples "
        "(`streetorder samples export`, then `streetorder train --extra-data`).",
        "",
    ]


def render_markdown(card: dict) -> str:
    m = card["metrics"]
    day, night = m["garbage_cn_val"], m["garbage_cn_val_night"]
    lines = [
        f"# {card['name']}: street-order detector ({card['architecture']}, {card['imgsz']} px)",
        "",
        "Generated by `streetorder train --stage measure` from `card.json`; edit the code, not this file.",
        "",
        "## Classes",
        ", ".join(f"{i} `{c}`" for i, c in enumerate(card["classes"])),
        "",
        "Street classes come from human labels; the others are COCO classes kept alive with pseudo-labels from the COCO model.",
        "",
        "## Data and licences",
        *[f"- **{d['name']}** ({d['licence']}): {d['use']}. Source: {d['source']}." for d in card["data"]],
        "",
        "## Training",
        "```",
        card["training"]["command"],
        "```",
        f"Config: `{json.dumps(card['training']['config'], ensure_ascii=False)}`",
        "",
        f"Environment: `{json.dumps(card['training']['environment'])}`. Epochs run: {card['training'].get('epochs_run', '–')}, best epoch {card['training'].get('best_epoch', '–')}, {card['training'].get('train_seconds', '–')} s.",
        "",
        "## Metrics (ONNX model, COCO-style AP)",
        "| class | mAP50 day | mAP50-95 day | mAP50 night | mAP50-95 night | boxes |",
        "|---|---|---|---|---|---|",
    ]
    for c in day["per_class"]:
        d, n = day["per_class"][c], night["per_class"][c]
        lines.append(f"| {c} | {_fmt(d['map50'])} | {_fmt(d['map50_95'])} | {_fmt(n['map50'])} | {_fmt(n['map50_95'])} | {d['instances']} |")
    lines.append(f"| **all** | **{_fmt(day['map50'])}** | **{_fmt(day['map50_95'])}** | **{_fmt(night['map50'])}** | **{_fmt(night['map50_95'])}** | |")
    fp = m["false_positives_unseen_streets"]
    rec = m["coco_recall_vs_teacher"]
    same = rec["coco_model_at_student_imgsz"]
    verdict = "met" if day["map50"] >= TARGET_STREET_MAP50 else "NOT met"
    lines += [
        "",
        f"Target for v1: mAP50 ≥ {TARGET_STREET_MAP50} over the street classes on garbage-cn val — {verdict}: {_fmt(day['map50'])} at imgsz {card['imgsz']}.",
        "",
        f"Day: garbage-cn val ({day['images']} images). Night: the same images through `pipeline/train/night.py` (dark, half infrared-grayscale, sensor noise), seeded per file.",
        "",
        f"**False alarms on unseen violation-free streets** ({fp['images']} held-out streets-in images, street classes):",
        *[f"- score ≥ {k.removeprefix('conf_')}: {v['fp_per_image']} per image, {v['images_with_fp']} images with any, {v['per_class']}" for k, v in fp.items() if k.startswith("conf_")],
        "",
        f"**COCO classes kept (recall against the COCO model itself)**: {_fmt(rec['recall'])} overall. Reference: {rec['reference']}; student: {rec['student']}; on {rec['images']}. "
        f"The COCO model itself at {card['imgsz']} px reaches {_fmt(same['recall'])}: that much is the smaller input, the rest is forgetting.",
        "",
        f"| class | recall | COCO model at {card['imgsz']} px | reference boxes |",
        "|---|---|---|---|",
        *[f"| {c} | {_fmt(v['recall'])} | {_fmt(same['per_class'][c]['recall'])} | {v['reference_boxes']} |" for c, v in rec["per_class"].items()],
        "",
        *_forgotten(rec["per_class"]),
        f"**Latency** (ONNX, CPU, batch 1, {m['latency_onnx_cpu']['imgsz']} px): median {m['latency_onnx_cpu']['median_ms']} ms, p90 {m['latency_onnx_cpu']['p90_ms']} ms on {card['training']['environment'].get('cpus')} cores.",
        "",
        "## Reproduce",
        "```",
        card["training"]["command"],
        f"streetorder evaluate --data {card['training']['config']['garbage_cn']}/data.yaml --model {card['name']} --json",
        f"streetorder evaluate --data {card['training']['config']['garbage_cn']}/data.yaml --model {card['name']} --night --json",
        "```",
    ]
    return "\n".join(lines) + "\n"

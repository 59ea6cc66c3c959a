"""The fixed benchmark a candidate model must pass before it serves, and the gate's four checks.

The benchmark (`benchmark-v1`) is data that `streetorder retrain` never trains on or picks checkpoints with:
- **garbage-cn**: the half of garbage-cn val whose file name hashes even (crc32); retraining validates on the
  other half. Human labels of the three street classes; the overall mAP50 is this part's.
- **samples**: the held-out fifth of every sample version (`versions.py`), with every labelling class; its
  classes with at least `min_instances` boxes join the per-class check (new classes, edited boxes).
- **clean streets**: the streets-in holdout (`datasets/streets-in-split.yaml`), violation-free: every
  street-class (or added-class) box at the operating score is a false alarm.
- **reviewed cases**: cases reviewed in the last `recent_days` days with a best frame; a model *raises* a case
  when it finds one of the violation's boxes again (same class, IoU >= 0.5, score >= the rules' threshold);
  case-level precision = confirmed raised / all raised.

The gate passes a candidate only if overall mAP50 is not lower than the current model's (within
`map_tolerance`), no class loses more than `class_tolerance` AP50, case precision does not drop, and false
alarms per image do not rise; otherwise it says which failed and by how much.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import supervision as sv
from pydantic import BaseModel, ConfigDict, Field
from supervision.metrics import MeanAveragePrecision

from ..detect import DetectorSettings, load_detector, resolve_model
from ..formats.yolo import cxcywh_to_xyxy, label_path, list_images, read_labels
from ..geometry import box_iou
from ..source.images import load_image
from ..paths import SHARED_DATA, STREETS_SPLIT
from ..samples.classes import MERGED_CLASSES, STREET_CLASSES, labelling_classes
from .versions import SampleVersion, find_versions, remap_labels

BENCHMARK = "benchmark-v1"
EVAL_CONF, EVAL_IOU = 0.001, 0.7  # as evaluate.py: the whole PR curve


def in_benchmark(image: Path) -> bool:
    """Whether a garbage-cn val image belongs to the benchmark half (the other half validates retraining)."""
    return zlib.crc32(Path(image).name.encode()) % 2 == 0


class GateConfig(BaseModel):
    """What a candidate must hold against the current model (`streetorder promote`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    map_tolerance: float = Field(0.0, ge=0, le=1, title="mAP50 tolerance", description="How much lower the candidate's overall mAP50 may be")
    class_tolerance: float = Field(0.05, ge=0, le=1, title="Per-class tolerance", description="Most AP50 any one class may lose")
    precision_tolerance: float = Field(0.0, ge=0, le=1, title="Case precision tolerance", description="How much case-level precision may drop")
    fp_tolerance: float = Field(0.0, ge=0, title="False-alarm tolerance", description="How many more false alarms per clean-street image are allowed")
    operating_conf: float = Field(0.25, gt=0, lt=1, title="Operating score", description="Score at which clean-street boxes count as false alarms")
    case_conf: float = Field(0.35, gt=0, lt=1, title="Case score", description="Score at which a model raises a reviewed case again (rules' min_score)")
    min_instances: int = Field(5, ge=1, title="Minimum boxes", description="A samples class joins the per-class check with at least this many boxes")
    recent_days: float = Field(90.0, gt=0, title="Recent days", description="Reviewed cases this recent are scored")


@dataclass
class Benchmark:
    garbage_cn: list[Path]
    streets: list[Path]
    samples: list[tuple[SampleVersion, Path]]
    classes: tuple[str, ...]
    name: str = BENCHMARK

    @classmethod
    def default(cls, shared_data: Path = SHARED_DATA, samples_root=None, streets_split: Path = STREETS_SPLIT, limit: int | None = None) -> Benchmark:
        from .dataset import Sources

        sources = Sources(shared_data / "garbage-cn", shared_data / "streets-in", streets_split)
        gcn = [p for p in list_images(shared_data / "garbage-cn" / "val" / "images") if in_benchmark(p)]
        streets = sources.holdout_streets()
        samples = [(v, p) for v in find_versions(samples_root) for p in v.images("holdout")]
        if limit is not None:
            gcn, streets = gcn[:limit], streets[: max(1, limit // 2)]
        return cls(gcn, streets, samples, labelling_classes())

    def key(self) -> str:
        """Changes whenever the benchmark's content does, so cached scores are never reused across versions."""
        h = hashlib.sha256()
        for p in [*self.garbage_cn, *self.streets, *(p for _, p in self.samples)]:
            h.update(str(p).encode())
        for v in {v.manifest_sha256 for v, _ in self.samples}:
            h.update(v.encode())
        return h.hexdigest()[:12]

    def describe(self) -> dict:
        versions = sorted({v.name for v, _ in self.samples})
        return {"name": self.name, "key": self.key(), "garbage_cn_val_half": len(self.garbage_cn), "clean_streets": len(self.streets),
                "sample_holdout": len(self.samples), "sample_versions": versions}


def _targets(rows: np.ndarray, w: int, h: int) -> sv.Detections:
    return sv.Detections(xyxy=(cxcywh_to_xyxy(rows[:, 1:]) * [w, h, w, h]).astype(np.float32).reshape(-1, 4), class_id=rows[:, 0].astype(int))


def _predict(detector, image: np.ndarray, names: tuple[str, ...]) -> sv.Detections:
    pred = detector.detect([image])[0]
    keep = np.isin(pred.data["class_name"], list(names))
    pred = pred[keep]
    pred.class_id = np.array([names.index(n) for n in pred.data["class_name"]], dtype=int)
    return pred


def pr_curve(preds: list[sv.Detections], targets: list[sv.Detections], cls: int, iou: float = 0.5) -> dict:
    """Precision at 101 recall points (interpolated, as COCO) and AP50 for one class; greedy matching per image."""
    scores, hits, n_gt = [], [], 0
    for p, t in zip(preds, targets):
        pb, ps = p.xyxy[p.class_id == cls], p.confidence[p.class_id == cls]
        tb = t.xyxy[t.class_id == cls]
        n_gt += len(tb)
        order = np.argsort(-ps)
        used = np.zeros(len(tb), bool)
        m = box_iou(pb[order], tb) if len(pb) and len(tb) else np.zeros((len(pb), 0))
        for k, i in enumerate(order):
            ok = False
            if m.shape[1]:
                cand = np.where(~used & (m[k] >= iou))[0]
                if len(cand):
                    used[cand[m[k, cand].argmax()]] = ok = True
            scores.append(float(ps[i]))
            hits.append(ok)
    if n_gt == 0:
        return {"recall": [], "precision": [], "ap50": None, "instances": 0}
    order = np.argsort(-np.array(scores)) if scores else np.array([], int)
    tp = np.cumsum(np.array(hits, float)[order]) if scores else np.zeros(0)
    fp = np.cumsum(1 - np.array(hits, float)[order]) if scores else np.zeros(0)
    rec = tp / n_gt
    prec = tp / np.maximum(tp + fp, 1e-9)
    grid = np.linspace(0, 1, 101)
    envelope = np.maximum.accumulate(prec[::-1])[::-1] if len(prec) else np.zeros(0)
    at = [float(envelope[np.searchsorted(rec, r, side="left")]) if len(rec) and np.searchsorted(rec, r, side="left") < len(rec) else 0.0 for r in grid]
    return {"recall": grid.round(2).tolist(), "precision": [round(v, 4) for v in at], "ap50": round(float(np.mean(at)), 4), "instances": n_gt}


def _part(detector, images: list[Path], names: tuple[str, ...], rows_of, conf_matrix_at: float) -> dict:
    preds, targets = [], []
    for path in images:
        image = load_image(path)
        h, w = image.shape[:2]
        targets.append(_targets(rows_of(path), w, h))
        preds.append(_predict(detector, image, names))
    if not images:
        return {"images": 0}
    result = MeanAveragePrecision().update(preds, targets).compute()
    per_class, curves = {}, {}
    for i, n in enumerate(names):
        row = np.where(result.matched_classes == i)[0]
        curve = pr_curve(preds, targets, i)
        if curve["instances"] == 0:
            continue
        ap = float(result.ap_per_class[row[0]][0]) if len(row) else 0.0
        per_class[n] = {"map50": round(ap, 4), "instances": curve["instances"]}
        curves[n] = {"recall": curve["recall"], "precision": curve["precision"]}
    cm = sv.ConfusionMatrix.from_detections(preds, targets, classes=list(names), conf_threshold=conf_matrix_at, iou_threshold=0.5)
    return {"images": len(images), "map50": round(float(max(result.map50, 0.0)), 4), "map50_95": round(float(max(result.map50_95, 0.0)), 4),
            "per_class": per_class, "pr_curves": curves, "confusion": {"classes": list(names), "matrix": cm.matrix.astype(int).tolist(), "conf": conf_matrix_at}}


def case_precision(model_det, store, cfg: GateConfig, now: datetime | None = None) -> dict:
    """Re-find reviewed cases' violation boxes; precision = confirmed among the cases the model raises again."""
    from ..source.images import decode_image
    from ..cases.case_frames import case_frame

    if store is None:
        return {"cases": 0, "precision": None, "note": "no ledger given"}
    since = (now or datetime.now(UTC)) - timedelta(days=cfg.recent_days)
    raised = confirmed_raised = scored = 0
    for case in store.reviewed():  # decided out of review (dispatched or rejected), or labelled
        updated = case.updated_at if case.updated_at.tzinfo else case.updated_at.replace(tzinfo=UTC)
        frame = case_frame(store, case)
        if case.status in ("detected", "reopened") or updated < since or frame is None:
            continue
        image = decode_image(store.evidence.read(frame.frame_sha256), f"case {case.id} best frame")
        boxes = [{"class_name": frame.proposals[i].class_name, "box": list(frame.proposals[i].box)} for i in frame.violation]
        dets = model_det.detect([image])[0]
        hit = False
        for v in boxes:
            same = (dets.data["class_name"] == v["class_name"]) & (dets.confidence >= cfg.case_conf)
            if same.any() and box_iou(dets.xyxy[same], np.array([v["box"]], float)).max() >= 0.5:
                hit = True
                break
        scored += 1
        raised += hit
        confirmed_raised += hit and case.status != "rejected"
    return {"cases": scored, "raised": raised, "confirmed_raised": confirmed_raised, "precision": round(confirmed_raised / raised, 4) if raised else None}


def _only(rows: np.ndarray, classes: tuple[str, ...], names: tuple[str, ...]) -> np.ndarray:
    """Rows re-indexed to `names`, dropping classes the model lacks (the per-class check reports those)."""
    keep = np.array([classes[int(c)] in names for c in rows[:, 0]], bool) if len(rows) else np.zeros(0, bool)
    out = rows[keep].copy()
    if len(out):
        out[:, 0] = [names.index(classes[int(c)]) for c in out[:, 0]]
    return out


def _onnx_sha(model, models_root: Path | None = None) -> str:
    ref = resolve_model(model, models_root)
    h = hashlib.sha256()
    with open(ref.onnx, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:12]


def score_model(
    model: str | Path, bench: Benchmark, store=None, cfg: GateConfig | None = None, threads: int | None = None, cache_dir: Path | None = Path("var/benchmark"),
    models_root: Path | None = None,
) -> dict:
    """Every benchmark figure of one model (ONNX), cached by model file and benchmark content. A model name is
    looked up in `models_root` (default: `models_dir()`)."""
    cfg = cfg or GateConfig()
    ref = resolve_model(model, models_root)
    key = f"{ref.name}-{_onnx_sha(model, models_root)}-{bench.key()}-{hashlib.sha256(cfg.model_dump_json().encode()).hexdigest()[:8]}"
    cache = cache_dir / f"{key}.json" if cache_dir else None
    if cache is not None and cache.exists() and store is None:
        return json.loads(cache.read_text())
    det = load_detector(model, backend="onnx", settings=DetectorSettings(conf=EVAL_CONF, iou=EVAL_IOU), threads=threads, root=models_root)
    names = tuple(det.names)
    street = tuple(n for n in STREET_CLASSES if n in names)
    gcn = _part(det, bench.garbage_cn, street, lambda p: read_labels(label_path(p)), cfg.operating_conf)
    by_image = {p: v for v, p in bench.samples}
    sample_names = tuple(n for n in bench.classes if n in names)
    samples = _part(det, list(by_image), sample_names, lambda p: _only(remap_labels(by_image[p], p, bench.classes), bench.classes, sample_names), cfg.operating_conf)
    # On violation-free streets every street-class box is a false alarm, and so is every box of an added class
    # (stall, trash_bag, ...): the holdout was chosen to hold none of them.
    alarm_classes = [n for n in names if n in street or (n in bench.classes and n not in MERGED_CLASSES)]
    from .measure import false_positives_per_image

    op = det.with_settings(DetectorSettings(conf=cfg.operating_conf))
    fp = false_positives_per_image(op, bench.streets, alarm_classes, confs=(cfg.operating_conf,))[f"conf_{cfg.operating_conf}"] if bench.streets else {"fp_per_image": 0.0}
    cases = case_precision(det.with_settings(DetectorSettings(conf=min(cfg.case_conf, 0.1))), store, cfg)
    out = {"model": ref.name, "onnx_sha256_12": key.split("-")[-3], "benchmark": bench.describe(), "garbage_cn": gcn, "samples": samples,
           "clean_streets": {"images": len(bench.streets), "fp_per_image": fp["fp_per_image"], "classes": alarm_classes}, "cases": cases}
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(out))
    return out


@dataclass
class Verdict:
    promote: bool
    checks: list[dict] = field(default_factory=list)

    @property
    def reasons(self) -> list[str]:
        return [c["detail"] for c in self.checks if not c["passed"]]

    def as_dict(self) -> dict:
        return {"promote": self.promote, "checks": self.checks}


def gate(candidate: dict, current: dict, cfg: GateConfig | None = None) -> Verdict:
    """The four checks of issue 9 §6, each with the figures behind it."""
    cfg = cfg or GateConfig()
    checks = []

    def check(name: str, passed: bool, detail: str) -> None:
        checks.append({"check": name, "passed": bool(passed), "detail": detail})

    cm, om = candidate["garbage_cn"].get("map50"), current["garbage_cn"].get("map50")
    if cm is None or om is None:
        check("overall_map50", False, "no benchmark mAP50 for one of the models")
    else:
        check("overall_map50", cm >= om - cfg.map_tolerance - 1e-9, f"overall mAP50 {cm:.4f} vs current {om:.4f} (may be lower by at most {cfg.map_tolerance})")
    worst, losses = None, []
    for part in ("garbage_cn", "samples"):
        cur = current[part].get("per_class", {})
        for name, c in candidate[part].get("per_class", {}).items():
            if name not in cur or (part == "samples" and c["instances"] < cfg.min_instances):
                continue
            drop = cur[name]["map50"] - c["map50"]
            losses.append(f"{name} {cur[name]['map50']:.3f}->{c['map50']:.3f}")
            if worst is None or drop > worst[1]:
                worst = (name, drop)
        for name in cur:
            if name not in candidate[part].get("per_class", {}) and (part == "garbage_cn" or cur[name]["instances"] >= cfg.min_instances):
                worst = (name, float("inf"))
    if worst is None:
        check("per_class", True, "no class to compare")
    elif worst[1] == float("inf"):
        check("per_class", False, f"class '{worst[0]}' is missing from the candidate")
    else:
        check("per_class", worst[1] <= cfg.class_tolerance + 1e-9, f"largest per-class AP50 loss {max(worst[1], 0):.4f} ({worst[0]}); tolerance {cfg.class_tolerance}; " + ", ".join(losses))
    cp, op_ = candidate["cases"].get("precision"), current["cases"].get("precision")
    if op_ is None:
        check("case_precision", True, f"not applicable: the current model raises none of the {current['cases'].get('cases', 0)} recently reviewed cases")
    elif cp is None:
        check("case_precision", True, f"the candidate raises none of the {candidate['cases']['cases']} recently reviewed cases (current: precision {op_:.3f}); nothing it raises is a false alarm")
    else:
        check("case_precision", cp >= op_ - cfg.precision_tolerance - 1e-9, f"case-level precision {cp:.3f} vs current {op_:.3f} on {candidate['cases']['cases']} reviewed cases")
    cf, of = candidate["clean_streets"]["fp_per_image"], current["clean_streets"]["fp_per_image"]
    check("false_alarms", cf <= of + cfg.fp_tolerance + 1e-9, f"false alarms per clean-street image {cf:.4f} vs current {of:.4f} at score {cfg.operating_conf} ({candidate['clean_streets']['images']} images)")
    return Verdict(all(c["passed"] for c in checks), checks)

"""What to label next: rank candidate frames by how much a human label would teach the model, under quotas.

Three signals, each rank-normalised over the candidates so none dominates by its scale:
- **uncertainty**: detections scoring near the decision threshold (the rules' `min_score`), where a label
  moves the boundary; `1 - prod(1 - u_i)` over a frame's boxes, `u_i = max(0, 1 - |s_i - t| / band)`;
- **disagreement**: 1 - F1 between the current model's boxes and another model's at the threshold (the
  previous version, or the COCO teacher on the COCO classes both know);
- **novelty**: 1 - cosine similarity to the nearest training-set embedding (the detector's own pooled
  head-input features, `embed.py`).
Then greedy by combined score, skipping near-duplicates of a frame already chosen (64-bit difference hash
within `dup_hamming` bits, or embedding cosine above `dup_cosine`, on the same camera), with at most
`camera_share` of the budget from one camera and `class_share` from one leading class; quota-blocked frames
fill what is left of the budget afterwards. Duplicates never do.
"""

from __future__ import annotations

import json
import math
import shutil
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import supervision as sv
from pydantic import BaseModel, ConfigDict, Field

from ..formats.yolo import write_labels, xyxy_to_cxcywh
from ..geometry import box_iou
from ..source.images import load_image


class SelectConfig(BaseModel):
    """How frames are ranked and rationed. Every field goes into the task's manifest."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    budget: int = Field(50, ge=1, title="Budget", description="Frames to choose")
    threshold: float = Field(0.35, gt=0, lt=1, title="Decision threshold", description="Score the rules act on (rules' min_score)")
    band: float = Field(0.2, gt=0, le=1, title="Uncertainty band", description="Distance from the threshold at which a score stops counting as uncertain")
    min_conf: float = Field(0.05, gt=0, lt=1, title="Lowest score read", description="Detections below this are ignored")
    w_uncertainty: float = Field(1.0, ge=0, title="Weight: uncertainty")
    w_disagreement: float = Field(1.0, ge=0, title="Weight: disagreement")
    w_novelty: float = Field(1.0, ge=0, title="Weight: novelty")
    camera_share: float = Field(0.34, gt=0, le=1, title="Camera share", description="Most of the budget one camera may take")
    class_share: float = Field(0.5, gt=0, le=1, title="Class share", description="Most of the budget frames led by one class may take")
    dup_hamming: int = Field(6, ge=0, le=64, title="Duplicate hash distance", description="Difference-hash bits within which two frames of a camera are one")
    dup_cosine: float = Field(0.995, gt=0, le=1, title="Duplicate embedding similarity", description="Centred-embedding cosine above which two frames of a camera are one")


@dataclass
class Candidate:
    image: Path
    camera: str | None = None
    taken_at: str | None = None
    uncertainty: float = 0.0
    disagreement: float = 0.0
    novelty: float = 0.0
    score: float = 0.0
    lead_class: str = "none"
    reason: str = ""
    detections: sv.Detections | None = field(default=None, repr=False)
    size: tuple[int, int] = (0, 0)  # width, height
    dhash: int = 0
    embedding: np.ndarray | None = field(default=None, repr=False)


def dhash(image: np.ndarray) -> int:
    """64-bit difference hash: robust to re-encoding and small light changes, not to a moved object."""
    g = cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image, (9, 8), interpolation=cv2.INTER_AREA)
    bits = (g[:, 1:] > g[:, :-1]).flatten()
    return int(sum(1 << i for i, b in enumerate(bits) if b))


def uncertainty(scores: np.ndarray, threshold: float, band: float) -> float:
    u = np.clip(1 - np.abs(np.asarray(scores, float) - threshold) / band, 0, 1)
    return float(1 - np.prod(1 - u)) if len(u) else 0.0


def disagreement(a: sv.Detections, b: sv.Detections, classes: Sequence[str], conf: float, iou: float = 0.5) -> float:
    """1 - F1 of a greedy same-class match at `iou` between two detection sets, on `classes` only."""
    def pick(d):
        m = (d.confidence >= conf) & np.isin(d.data["class_name"], list(classes))
        return d.xyxy[m], d.data["class_name"][m]

    (xa, na), (xb, nb) = pick(a), pick(b)
    if len(xa) + len(xb) == 0:
        return 0.0
    matched = 0
    if len(xa) and len(xb):
        m = box_iou(xa, xb) * (na[:, None] == nb[None, :])
        while m.size and m.max() >= iou:
            i, j = np.unravel_index(m.argmax(), m.shape)
            matched += 1
            m[i, :], m[:, j] = 0, 0
    return float(1 - 2 * matched / (len(xa) + len(xb)))


def _ranks(x: np.ndarray) -> np.ndarray:
    """Values mapped to [0, 1] by rank (ties share a rank); all-equal values map to 0."""
    if len(x) == 0 or np.ptp(x) == 0:
        return np.zeros(len(x))
    order = np.unique(x, return_inverse=True)[1]
    return order / order.max()


def _centre(feats: np.ndarray, mean: np.ndarray) -> np.ndarray:
    f = feats - mean
    return f / (np.linalg.norm(f, axis=1, keepdims=True) + 1e-9)


def score_frames(
    model: str | Path,
    frames: Sequence[tuple[Path, str | None, str | None]],
    cfg: SelectConfig,
    train_images: Sequence[Path] = (),
    other: str | Path | None = None,
    other_classes: Sequence[str] | None = None,
    threads: int | None = None,
    progress: bool = True,
) -> list[Candidate]:
    """Score `(image, camera, taken_at)` frames with the ONNX `model`; `other` is the model it is compared with
    (on `other_classes`, default the classes both know); `train_images` anchor novelty."""
    from tqdm import tqdm

    from ..detect import DetectorSettings, load_detector
    from .embed import load_embedder

    embedder = load_embedder(model, conf=cfg.min_conf, threads=threads)
    second = load_detector(other, backend="onnx", settings=DetectorSettings(conf=cfg.threshold), threads=threads) if other else None
    shared = list(other_classes or ([n for n in embedder.names if n in second.names] if second else []))

    def embed_all(paths, desc):
        feats = []
        for p in tqdm(paths, desc=desc, unit="img", disable=not progress):
            feats.append(embedder.detect_and_embed([load_image(p)])[1][0])
        return np.stack(feats) if feats else np.zeros((0, 1), np.float32)

    ref = embed_all(list(train_images), "embed training set")
    out: list[Candidate] = []
    feats = []
    for path, camera, at in tqdm(frames, desc="score frames", unit="img", disable=not progress):
        image = load_image(path)
        [dets], emb = embedder.detect_and_embed([image])
        c = Candidate(Path(path), camera, at, detections=dets, size=(image.shape[1], image.shape[0]), dhash=dhash(image))
        c.uncertainty = uncertainty(dets.confidence, cfg.threshold, cfg.band)
        if len(dets):
            near = np.abs(dets.confidence - cfg.threshold)
            c.lead_class = str(dets.data["class_name"][int(near.argmin())])
        if second is not None and shared:
            c.disagreement = disagreement(dets, second.detect([image])[0], shared, cfg.threshold)
        feats.append(emb[0])
        out.append(c)
    if not out:
        return out
    feats = np.stack(feats)
    mean = ref.mean(axis=0) if len(ref) else feats.mean(axis=0)
    cand = _centre(feats, mean)
    if len(ref):
        nov = 1 - (cand @ _centre(ref, mean).T).max(axis=1)
    else:
        nov = np.zeros(len(out))
    for c, e, n in zip(out, cand, nov):
        c.embedding, c.novelty = e, float(n)
    parts = {
        "uncertainty": _ranks(np.array([c.uncertainty for c in out])) * cfg.w_uncertainty,
        "disagreement": _ranks(np.array([c.disagreement for c in out])) * cfg.w_disagreement,
        "novelty": _ranks(nov) * cfg.w_novelty,
    }
    total = sum(parts.values())
    for i, c in enumerate(out):
        c.score = round(float(total[i]), 4)
        c.reason = max(parts, key=lambda k: parts[k][i]) if total[i] > 0 else "none"
    return out


def _duplicate(c: Candidate, chosen: list[Candidate], cfg: SelectConfig) -> bool:
    for o in chosen:
        if c.camera != o.camera:
            continue
        if bin(c.dhash ^ o.dhash).count("1") <= cfg.dup_hamming:
            return True
        if c.embedding is not None and o.embedding is not None and float(c.embedding @ o.embedding) >= cfg.dup_cosine:
            return True
    return False


def choose(candidates: Sequence[Candidate], cfg: SelectConfig) -> tuple[list[Candidate], dict]:
    """Greedy by score under the quotas; returns the chosen frames and what was skipped, by reason."""
    cam_cap = math.ceil(cfg.budget * cfg.camera_share)
    cls_cap = math.ceil(cfg.budget * cfg.class_share)
    chosen: list[Candidate] = []
    deferred: list[Candidate] = []
    skipped = Counter()
    cams, classes = Counter(), Counter()
    for c in sorted(candidates, key=lambda c: -c.score):
        if len(chosen) >= cfg.budget:
            break
        if _duplicate(c, chosen, cfg):
            skipped["near_duplicate"] += 1
            continue
        if (c.camera is not None and cams[c.camera] >= cam_cap) or classes[c.lead_class] >= cls_cap:
            deferred.append(c)
            continue
        chosen.append(c)
        cams[c.camera] += 1
        classes[c.lead_class] += 1
    for c in deferred:  # quotas ration, they do not leave the budget unspent
        if len(chosen) >= cfg.budget:
            break
        if _duplicate(c, chosen, cfg):
            skipped["near_duplicate"] += 1
            continue
        chosen.append(c)
    skipped["quota_deferred"] = len(deferred)
    return chosen, dict(skipped)


def write_task(chosen: Sequence[Candidate], out: Path, classes: Sequence[str], cfg: SelectConfig, model: str, extra: dict | None = None) -> Path:
    """A labelling task: `images/`, `labels/` (the model's boxes at the threshold as pseudo-labels, YOLO ids in
    `classes`), `data.yaml` and `manifest.json` (why each frame was chosen). Never overwrites a task."""
    out = Path(out)
    if (out / "manifest.json").exists():
        raise FileExistsError(f"{out} already holds a labelling task; choose a new folder")
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    items = []
    for i, c in enumerate(chosen):
        name = f"{i:04d}-{c.image.stem}"
        shutil.copyfile(c.image, out / "images" / f"{name}{c.image.suffix.lower()}")
        d = c.detections
        rows = np.zeros((0, 5), np.float32)
        if d is not None and len(d):
            keep = (d.confidence >= cfg.threshold) & np.isin(d.data["class_name"], list(classes))
            d = d[keep]
            if len(d):
                w, h = c.size
                ids = np.array([list(classes).index(n) for n in d.data["class_name"]], np.float32)[:, None]
                rows = np.concatenate([ids, xyxy_to_cxcywh(np.clip(d.xyxy / [w, h, w, h], 0, 1))], axis=1)
        write_labels(out / "labels" / f"{name}.txt", rows)
        items.append({
            "image": f"images/{name}{c.image.suffix.lower()}", "label": f"labels/{name}.txt", "source": str(c.image), "camera": c.camera,
            "taken_at": c.taken_at, "pseudo_boxes": len(rows), "score": c.score, "reason": c.reason, "lead_class": c.lead_class,
            "uncertainty": round(c.uncertainty, 4), "disagreement": round(c.disagreement, 4), "novelty": round(c.novelty, 4),
        })
    (out / "data.yaml").write_text(json.dumps({"path": str(out.resolve()), "train": "images", "val": "images", "names": dict(enumerate(classes))}, ensure_ascii=False))
    manifest = {
        "kind": "labelling_task", "created": datetime.now(UTC).isoformat(timespec="seconds"), "model": model, "classes": list(classes),
        "select": cfg.model_dump(), "per_camera": dict(Counter(str(c.camera) for c in chosen)), "per_reason": dict(Counter(c.reason for c in chosen)),
        "items": items, **(extra or {}),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    return out


def select_frames(model, images: Sequence[Path], cfg: SelectConfig, train_images: Sequence[Path] = (), other=None, threads: int | None = None) -> list[Candidate]:
    """Score plain image files (no camera) and choose `cfg.budget` of them: the experiment's entry point."""
    cands = score_frames(model, [(Path(p), None, None) for p in images], cfg, train_images, other, threads=threads)
    return choose(cands, cfg)[0]


def candidate_summary(c: Candidate) -> dict:
    keys = ("camera", "taken_at", "score", "reason", "lead_class", "uncertainty", "disagreement", "novelty")
    return {"image": str(c.image)} | {k: getattr(c, k) for k in keys}

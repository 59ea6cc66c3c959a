"""Where models live and which one is current.

`models/<name>/` holds `model.onnx`, `model.pt` and `card.json`; `models/CURRENT` names the one in use. A model
can also be given as a folder or as an `.onnx`/`.pt` file anywhere.
"""

from __future__ import annotations

import json
import logging
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config.settings import PipelineSettings
from ..paths import SAMPLE_FOOTAGE
from .base import Detector, DetectorSettings



def models_dir() -> Path:
    """The models folder: $STREETORDER_MODELS, else models/."""
    return PipelineSettings().models


def current_name(root: Path | None = None) -> str:
    root = root or models_dir()
    pointer = root / "CURRENT"
    if not pointer.exists():
        raise FileNotFoundError(f"no current model: {pointer} is missing (train one with `streetorder train`)")
    return pointer.read_text().strip()


@dataclass(frozen=True)
class ModelRef:
    """A resolved model: its files and its card (empty when it has none)."""

    name: str
    onnx: Path | None
    pt: Path | None
    card: dict = field(default_factory=dict, compare=False)


def resolve_model(spec: str | Path | None = None, root: Path | None = None) -> ModelRef:
    """Turn a model name, folder or weights file (or None for the current model) into a `ModelRef`. Names are
    looked up in `root` (default: `models_dir()`)."""
    root = root or models_dir()
    if spec is None:
        spec = current_name(root)
    path = Path(spec)
    if path.suffix in (".onnx", ".pt"):
        if not path.is_file():
            raise FileNotFoundError(f"model file not found: {path}")
        sibling = path.with_suffix(".pt" if path.suffix == ".onnx" else ".onnx")
        onnx, pt = (path, sibling) if path.suffix == ".onnx" else (sibling, path)
        folder = path.parent
    else:
        folder = path if path.is_dir() else root / str(spec)
        if not folder.is_dir():
            known = sorted(p.name for p in root.iterdir() if (p / "model.onnx").exists()) if root.is_dir() else []
            raise FileNotFoundError(f"unknown model '{spec}' (known in {root}: {', '.join(known) or 'none'})")
        onnx, pt = folder / "model.onnx", folder / "model.pt"
    card_path = folder / "card.json"
    card = json.loads(card_path.read_text()) if card_path.is_file() else {}
    return ModelRef(
        name=card.get("name") or (path.stem if path.suffix in (".onnx", ".pt") else folder.name),
        onnx=onnx if onnx.is_file() else None,
        pt=pt if pt.is_file() else None,
        card=card,
    )


BACKENDS = ("auto", "onnx", "openvino", "ultralytics")
PROBE_IMAGE = SAMPLE_FOOTAGE / "patrol" / "patrol_01.jpg"

log = logging.getLogger(__name__)


def load_detector(
    spec: str | Path | None = None, backend: str = "auto", settings: DetectorSettings | None = None, threads: int | None = None,
    root: Path | None = None,
) -> Detector:
    """Build a detector for a model. `backend`: 'onnx' (onnxruntime) or 'openvino' (both serve the model's
    `.onnx`, no torch), 'ultralytics' (the `.pt`; needs the train extra), or 'auto': the faster of onnx and
    openvino that agrees with onnx on a sample image, probed once per model file and thread count.
    The detector's `backend` attribute names the one in use. A model name is looked up in `root` (default:
    `models_dir()`)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend '{backend}' (use one of: {', '.join(BACKENDS)})")
    ref = resolve_model(spec, root)
    if backend == "ultralytics":
        if ref.pt is None:
            raise FileNotFoundError(f"model '{ref.name}' has no model.pt")
        from .ultralytics import UltralyticsDetector

        return UltralyticsDetector(ref.pt, settings)
    if ref.onnx is None:
        raise FileNotFoundError(f"model '{ref.name}' has no model.onnx")
    if backend == "auto":
        return _auto(ref, settings, threads)
    return _exported(backend, ref.onnx, settings, threads)


def _exported(backend: str, onnx: Path, settings: DetectorSettings | None, threads: int | None):
    if backend == "openvino":
        from .openvino import OpenVinoDetector

        return OpenVinoDetector(onnx, settings, threads=threads)
    from .onnx import OnnxDetector

    return OnnxDetector(onnx, settings, threads=threads)


@dataclass(frozen=True)
class AutoChoice:
    """What `backend='auto'` picked for one model file, and why."""

    backend: str
    reason: str
    ms: dict = field(default_factory=dict)  # median ms per image on the probe image, per backend probed


_AUTO: dict[tuple, AutoChoice] = {}
_AUTO_LOCK = threading.Lock()


def _auto(ref: ModelRef, settings: DetectorSettings | None, threads: int | None):
    onnx = ref.onnx.resolve()
    key = (str(onnx), onnx.stat().st_mtime_ns, threads, settings.imgsz if settings else None)
    with _AUTO_LOCK:
        choice = _AUTO.get(key)
        if choice is not None:
            det = _exported(choice.backend, onnx, settings, threads)
        else:
            det, choice = _probe(onnx, settings, threads)
            _AUTO[key] = choice
            level = logging.INFO if choice.ms else logging.WARNING  # ms empty: openvino could not be used
            log.log(level, "backend auto for %s: %s (%s)", onnx, choice.backend, choice.reason)
    det.auto_choice = choice
    return det


SWITCH_MARGIN = 0.05  # openvino must be this much faster to replace onnx, so timing noise does not flip the choice


def _probe(onnx: Path, settings: DetectorSettings | None, threads: int | None, rounds: int = 10):
    """Load onnx and openvino, check openvino against onnx on the probe image, time both; keep the faster
    (openvino only when more than `SWITCH_MARGIN` faster)."""
    from .onnx import OnnxDetector

    base = OnnxDetector(onnx, settings, threads=threads)
    try:
        from .openvino import OpenVinoDetector

        other = OpenVinoDetector(onnx, settings, threads=threads)
    except Exception as e:  # not installed, or it cannot compile this model: serve with onnxruntime
        return base, AutoChoice("onnx", f"openvino unavailable: {type(e).__name__}: {e}")
    if not PROBE_IMAGE.is_file():
        return base, AutoChoice("onnx", f"no probe image at {PROBE_IMAGE}; openvino not checked")
    from ..source.images import load_image

    image = load_image(PROBE_IMAGE)
    probe = DetectorSettings(conf=0.2, imgsz=base.imgsz)
    try:
        problems, matched = parity_problems(base.with_settings(probe).detect([image]), other.with_settings(probe).detect([image]))
    except Exception as e:
        return base, AutoChoice("onnx", f"openvino failed on the probe image: {type(e).__name__}: {e}")
    if problems:
        return base, AutoChoice("onnx", f"openvino disagrees with onnx on {PROBE_IMAGE.name}: {problems[0]}")
    times: dict[str, list[float]] = {"onnx": [], "openvino": []}
    for _ in range(rounds):  # interleaved, so drift hits both alike
        for name, det in (("onnx", base), ("openvino", other)):
            t = time.perf_counter()
            det.detect([image])
            times[name].append(time.perf_counter() - t)
    ms = {k: round(statistics.median(v) * 1000, 2) for k, v in times.items()}
    best = "openvino" if ms["openvino"] < ms["onnx"] * (1 - SWITCH_MARGIN) else "onnx"
    agree = f"openvino matches onnx ({matched} boxes on {PROBE_IMAGE.name})"
    verdict = "openvino faster" if best == "openvino" else f"openvino not >{SWITCH_MARGIN:.0%} faster"
    return (other if best == "openvino" else base), AutoChoice(best, f"{agree}; {verdict}: {ms['onnx']} ms onnx vs {ms['openvino']} ms openvino", ms)


def parity_problems(ref: list, other: list, min_score: float = 0.3, min_iou: float = 0.9, max_score_diff: float = 0.02) -> tuple[list[str], int]:
    """Whether two backends agree: every box of either scoring >= `min_score` has a partner of the same class in
    the other (searched down to `min_score - 0.05`) with IoU >= `min_iou` and |score difference| <= `max_score_diff`.
    Returns (problems, matched boxes)."""
    from ..geometry import box_iou

    problems, matched = [], 0
    for a_all, b_all in ((ref, other), (other, ref)):
        for a, b in zip(a_all, b_all):
            a, b = a[a.confidence >= min_score], b[b.confidence >= min_score - 0.05]
            if len(a) and not len(b):
                problems.append(f"{len(a)} box(es) without a partner")
                continue
            iou = box_iou(a.xyxy, b.xyxy) if len(a) else None
            for i in range(len(a)):
                same = np.where(b.class_id == a.class_id[i])[0]
                if not len(same):
                    problems.append(f"class {a.data['class_name'][i]} missing in the other backend")
                    continue
                j = same[iou[i, same].argmax()]
                if iou[i, j] < min_iou:
                    problems.append(f"box IoU {iou[i, j]:.3f} < {min_iou}")
                elif abs(float(a.confidence[i]) - float(b.confidence[j])) > max_score_diff:
                    problems.append(f"score differs by {abs(float(a.confidence[i]) - float(b.confidence[j])):.3f} > {max_score_diff}")
                else:
                    matched += 1
    return problems, matched

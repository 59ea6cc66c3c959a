"""Where models live and which one is current.

`models/<name>/` holds `model.onnx`, `model.pt` and `card.json`; `models/CURRENT` names the one in use. A model
can also be given as a folder or as an `.onnx`/`.pt` file anywhere.
"""

from __future__ import annotations

import hashlib
import json
import logging
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config.settings import PipelineSettings
from ..paths import REPO, SAMPLE_FOOTAGE
from .base import Detector, DetectorSettings
from .variants import VARIANTS, gate_record, machine_key, variant_file



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


BACKENDS = ("auto", "onnx", "openvino", *VARIANTS, "ultralytics")
PROBE_IMAGE = SAMPLE_FOOTAGE / "patrol" / "patrol_01.jpg"

log = logging.getLogger(__name__)


def load_detector(
    spec: str | Path | None = None, backend: str = "auto", settings: DetectorSettings | None = None, threads: int | None = None,
    root: Path | None = None,
) -> Detector:
    """Build a detector for a model. `backend`: 'onnx' (onnxruntime) or 'openvino' (both serve the model's f32
    `.onnx`, no torch), a variant ('openvino-bf16', 'openvino-int8': `variants.py`, served whether or not the gate
    accepted it, as the gate itself needs), 'ultralytics' (the `.pt`; needs the train extra), or 'auto': the
    fastest on this machine of onnx, openvino (when it agrees with onnx on a sample image) and the variants the
    accuracy gate accepted (card.json), chosen once per model files, thread count and CPU and cached
    (`STREETORDER_BACKEND_CACHE`). The detector's `backend` attribute names the one in use. A model name is
    looked up in `root` (default: `models_dir()`)."""
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
    if backend in VARIANTS:
        from .variants import open_variant

        return open_variant(onnx.parent, backend, settings, threads)
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
    cached: str | None = None  # where the choice was read from, when it was not measured in this process


_AUTO: dict[tuple, AutoChoice] = {}
_AUTO_LOCK = threading.Lock()


def _files_key(ref: ModelRef) -> list:
    """The files a choice depends on (the f32 model, each variant's file, the card's gate verdicts)."""
    onnx = ref.onnx.resolve()
    files = [onnx] + [variant_file(onnx.parent, v) for v in VARIANTS]
    stamps = [[str(f), f.stat().st_mtime_ns, f.stat().st_size] for f in dict.fromkeys(files) if f.is_file()]
    gates = {v: gate_record(ref.card, v) for v in VARIANTS}
    return [stamps, hashlib.sha1(json.dumps(gates, sort_keys=True, default=str).encode()).hexdigest()[:12]]


def _auto(ref: ModelRef, settings: DetectorSettings | None, threads: int | None):
    onnx = ref.onnx.resolve()
    key = (json.dumps(_files_key(ref)), threads, settings.imgsz if settings else None, machine_key(), PipelineSettings().auto_variants)
    with _AUTO_LOCK:
        choice = _AUTO.get(key)
        if choice is None:
            choice = _read_cache(key)
            if choice is not None:
                log.info("backend auto for %s: %s, as chosen before on this machine (%s): %s", onnx, choice.backend, choice.cached, choice.reason)
        if choice is not None:
            det = _exported(choice.backend, onnx, settings, threads)
        else:
            det, choice = _probe(ref, settings, threads)
            _write_cache(key, choice)
            level = logging.INFO if choice.ms else logging.WARNING  # ms empty: openvino could not be used
            log.log(level, "backend auto for %s: %s (%s)", onnx, choice.backend, choice.reason)
        _AUTO[key] = choice
    det.auto_choice = choice
    return det


def cache_path() -> Path | None:
    """The file auto's choices are kept in across processes (None: off)."""
    value = PipelineSettings().backend_cache
    if value is not None and value.lower() in ("off", "0", "false", "none", ""):
        return None
    return Path(value) if value else REPO / "var" / "backend-auto.json"


def _cache_id(key: tuple) -> str:
    return hashlib.sha1(json.dumps(key).encode()).hexdigest()


def _read_cache(key: tuple) -> AutoChoice | None:
    path = cache_path()
    if path is None or not path.is_file():
        return None
    try:
        entry = json.loads(path.read_text()).get(_cache_id(key))
        if entry is None or entry.get("backend") not in BACKENDS:
            return None
        return AutoChoice(entry["backend"], entry["reason"], entry.get("ms") or {}, cached=str(path))
    except (OSError, ValueError, AttributeError, KeyError, TypeError) as e:  # a damaged cache is measured again, not fatal
        log.warning("backend auto: ignoring the unreadable choice cache %s (%s)", path, e)
        return None


def _write_cache(key: tuple, choice: AutoChoice) -> None:
    path = cache_path()
    if path is None or not choice.ms:  # nothing measured (openvino missing): nothing worth keeping
        return
    try:
        entries = json.loads(path.read_text()) if path.is_file() else {}
        if not isinstance(entries, dict):
            entries = {}
    except (OSError, ValueError):
        entries = {}
    entries[_cache_id(key)] = {"model": key[0], "threads": key[1], "imgsz": key[2], "machine": key[3], "backend": choice.backend,
                               "reason": choice.reason, "ms": choice.ms, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(entries, indent=1))
        tmp.replace(path)
    except OSError as e:  # a read-only checkout still serves; it only measures again next time
        log.warning("backend auto: cannot keep the choice in %s (%s)", path, e)


SWITCH_MARGIN = 0.05  # another backend must be this much faster than onnx to replace it, so timing noise does not flip the choice


def _probe(ref: ModelRef, settings: DetectorSettings | None, threads: int | None, rounds: int = 10):
    """The candidates: onnx; openvino f32 when it matches onnx's scores on the probe image; each variant the gate
    accepted that this CPU runs and whose boxes agree with onnx's there (a sanity check that the file is the one
    gated: the gate measured its accuracy). All timed interleaved on the probe image; the fastest is kept, one
    other than onnx only when more than `SWITCH_MARGIN` faster."""
    from .onnx import OnnxDetector

    onnx = ref.onnx.resolve()
    base = OnnxDetector(onnx, settings, threads=threads)
    try:
        from .openvino import OpenVinoDetector

        other = OpenVinoDetector(onnx, settings, threads=threads)
    except Exception as e:  # not installed, or it cannot compile this model: serve with onnxruntime
        return base, AutoChoice("onnx", f"openvino unavailable: {type(e).__name__}: {e}")
    if not PROBE_IMAGE.is_file():
        return base, AutoChoice("onnx", f"no probe image at {PROBE_IMAGE}; openvino not checked")
    from ..source.images import load_image
    from .variants import box_agreement, unusable

    image = load_image(PROBE_IMAGE)
    probe = DetectorSettings(conf=0.2, imgsz=base.imgsz)
    try:
        ref_dets = base.with_settings(probe).detect([image])
        problems, matched = parity_problems(ref_dets, other.with_settings(probe).detect([image]))
    except Exception as e:
        return base, AutoChoice("onnx", f"openvino failed on the probe image: {type(e).__name__}: {e}")
    candidates, notes = {"onnx": base}, []
    if problems:
        notes.append(f"openvino disagrees with onnx on {PROBE_IMAGE.name}: {problems[0]}")
    else:
        candidates["openvino"] = other
        notes.append(f"openvino matches onnx ({matched} boxes on {PROBE_IMAGE.name})")
    variants = PipelineSettings().auto_variants
    for name in VARIANTS:
        why = unusable(ref.card, onnx.parent, name) if variants else "STREETORDER_AUTO_VARIANTS is off"
        if why is None:
            try:
                det = _exported(name, onnx, settings, threads)
                agree = box_agreement(ref_dets, det.with_settings(probe).detect([image]))
                if min(v for v in (agree["recall"], agree["precision"], 1.0) if v is not None) < 0.9:
                    why = f"boxes disagree with onnx on {PROBE_IMAGE.name}: recall {agree['recall']}, precision {agree['precision']}"
                else:
                    candidates[name] = det
                    notes.append(f"{name} accepted by the gate")
                    continue
            except Exception as e:
                why = f"failed to load or run: {type(e).__name__}: {e}"
        notes.append(f"{name} skipped: {why}")
    if len(candidates) == 1:  # nothing to compare: onnx, and no timing (ms empty: logged as a warning)
        return base, AutoChoice("onnx", "; ".join(notes))
    times: dict[str, list[float]] = {k: [] for k in candidates}
    for det in candidates.values():
        det.detect([image])  # warm-up (first-call allocations)
    for _ in range(rounds):  # interleaved, so drift hits all alike
        for name, det in candidates.items():
            t = time.perf_counter()
            det.detect([image])
            times[name].append(time.perf_counter() - t)
    ms = {k: round(statistics.median(v) * 1000, 2) for k, v in times.items()}
    fastest = min(ms, key=ms.get)
    best = fastest if fastest == "onnx" or ms[fastest] < ms["onnx"] * (1 - SWITCH_MARGIN) else "onnx"
    timed = ", ".join(f"{k} {v} ms" for k, v in sorted(ms.items(), key=lambda kv: kv[1]))
    verdict = f"{best} fastest" if best == fastest else f"{fastest} not >{SWITCH_MARGIN:.0%} faster than onnx"
    return candidates[best], AutoChoice(best, f"{'; '.join(notes)}; {verdict}: {timed}", ms)


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

"""Reduced-precision variants of a model: what they are, whether this CPU can run them, whether they were accepted.

A model folder holds `model.onnx` (f32) and may hold what `streetorder models quantize` (`pipeline/train/quantize.py`)
builds beside it:
- `openvino-int8`: `model.int8.xml` + `.bin`, an OpenVINO IR quantized to INT8 by NNCF post-training quantization
  on real street frames, most of the detection head kept in float (run in f32);
- `openvino-int8-bf16`: the same IR with the layers it keeps in float run in bf16, on CPUs with both;
  gated on its own, since the head's scores move with its precision;
- `openvino-bf16`: no file of its own, `model.onnx` compiled by OpenVINO with the bf16 inference precision hint
  (on CPUs with AVX512-BF16 or AMX).

A variant is never served on trust: `card.json` records, under `variants.<backend>.gate`, the accuracy gate's
verdict (`pipeline/train/gate.py`: mAP on garbage-cn val, cue-class recall, two-wheeler recall and precision), so
that `--backend auto` serves only accepted variants and does not evaluate anything at serve time. Serving needs
only onnxruntime and OpenVINO, never NNCF or torch.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..geometry import box_iou
from .base import DetectorSettings


@dataclass(frozen=True)
class Variant:
    """One way to serve a model other than its f32 `model.onnx` on onnxruntime."""

    backend: str  # the name asked for with --backend, and the detector's `backend`
    precision: str  # 'bf16' or 'int8'
    file: str  # the file in the model folder it serves
    hint: str  # OpenVINO's INFERENCE_PRECISION_HINT: how the layers left in float run
    capabilities: tuple[str, ...]  # the OpenVINO CPU capabilities it needs

    def missing(self) -> list[str]:
        """The capabilities this CPU lacks for it (none: it can run here)."""
        return [c for c in self.capabilities if c not in cpu_capabilities()]


VARIANTS: dict[str, Variant] = {
    v.backend: v
    for v in (
        Variant("openvino-int8", "int8", "model.int8.xml", "f32", ("INT8",)),
        Variant("openvino-int8-bf16", "int8", "model.int8.xml", "bf16", ("INT8", "BF16")),
        Variant("openvino-bf16", "bf16", "model.onnx", "bf16", ("BF16",)),
    )
}


@functools.cache
def cpu_capabilities() -> tuple[str, ...]:
    """What OpenVINO's CPU plugin says this CPU can run fast (FP32, BF16, INT8, ...); () without OpenVINO."""
    try:
        from .openvino import _core

        return tuple(_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    except Exception:  # not installed or no CPU plugin: no variant can run
        return ()


@functools.cache
def _cpuinfo() -> tuple[str, frozenset[str]]:
    """The CPU's model name and flags from /proc/cpuinfo (the platform's name and none elsewhere)."""
    name, flags = platform.processor() or platform.machine(), frozenset()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and ":" in line:
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and ":" in line:
                flags = frozenset(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    return name, flags


def cpu_name() -> str:
    """The CPU as a person reads it: model name, cores, and the matrix and bf16 flags that pick OpenVINO's kernels
    (a timing says where it was taken: AMX runs bf16 about twice as fast as AVX512-BF16 alone; AVX2 alone runs
    INT8 without VNNI)."""
    name, flags = _cpuinfo()
    shown = [f for f in ("avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8") if f in flags]
    if "avx512f" not in flags and "avx2" in flags:  # no AVX-512 at all: INT8 without VNNI, no bf16
        shown = ["avx2 only", *shown]
    return f"{name}, {os.cpu_count()} cores" + (f", {' '.join(shown)}" if shown else "")


@functools.cache
def machine_key() -> str:
    """The CPU as far as speed goes: model name, the vector and matrix flags, core count, runtime versions. A
    choice measured on one machine is not reused on another."""
    name, all_flags = _cpuinfo()
    flags = sorted(f for f in all_flags if f.startswith(("avx", "amx", "fma", "f16c")))
    versions = []
    for module in ("onnxruntime", "openvino"):
        try:
            versions.append(f"{module}={__import__(module).__version__}")
        except Exception:
            versions.append(f"{module}=none")
    text = "|".join([name, " ".join(flags), str(os.cpu_count()), *versions])
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def variant_file(folder: Path, backend: str) -> Path:
    return folder / VARIANTS[backend].file


def gate_record(card: dict, backend: str) -> dict | None:
    """The gate's verdict for a variant as the card records it, or None when it was never gated."""
    return ((card.get("variants") or {}).get(backend) or {}).get("gate")


def verdict(gate: dict) -> tuple[bool, list[str]]:
    """A gate record's verdict over every CPU it was gated on (the one that built it, and `also_on`: `models quantize
    --gate-only` on others, whose kernels differ): accepted only if each accepted it; else why, CPU by CPU."""
    failed = [] if gate.get("accepted") is True else list(gate.get("failed") or ["no reason recorded"])
    for other in gate.get("also_on") or []:
        if other.get("accepted") is not True:
            failed += [f"on {other.get('cpu', 'another CPU')}: {why}" for why in other.get("failed") or ["no reason recorded"]]
    return not failed, failed


def unusable(card: dict, folder: Path, backend: str) -> str | None:
    """Why this variant cannot be served here (None: it can): no file, never gated, refused, or not on this CPU."""
    v = VARIANTS[backend]
    if not variant_file(folder, backend).is_file():
        return f"no {v.file}"
    gate = gate_record(card, backend)
    if gate is None:
        return "not gated (no verdict in card.json)"
    accepted, failed = verdict(gate)
    if not accepted:
        return "refused by the gate: " + "; ".join(failed)
    if v.missing():
        return f"this CPU lacks {' and '.join(v.missing())}"
    return None


def open_variant(folder: Path, backend: str, settings: DetectorSettings | None = None, threads: int | None = None):
    """The detector for one variant of the model in `folder` (whether it was accepted is the caller's business:
    the gate itself opens refused ones)."""
    from .openvino import OpenVinoDetector

    if backend not in VARIANTS:
        raise ValueError(f"unknown variant '{backend}' (known: {', '.join(VARIANTS)})")
    v = VARIANTS[backend]
    path = variant_file(folder, backend)
    if not path.is_file():
        raise FileNotFoundError(f"{folder.name} has no {v.file} (build it with `streetorder models quantize {folder.name}`)")
    det = OpenVinoDetector(path, settings, threads=threads, precision=v.hint)
    det.backend = backend
    return det


def box_agreement(reference: list, other: list, min_score: float = 0.3, iou: float = 0.5, slack: float = 0.1) -> dict:
    """How far two variants' boxes agree, scores aside: the share of the reference's boxes scoring >= `min_score`
    that the other finds (same class, IoU >= `iou`, scoring >= `min_score - slack`), and the same the other way
    round, with the counts behind them (`missed` of `boxes`, `extra` of `other_boxes`). Quantization moves
    scores; boxes that move are what the accuracy gate refuses."""
    found = {"recall": [0, 0], "precision": [0, 0]}
    for key, (a_all, b_all) in (("recall", (reference, other)), ("precision", (other, reference))):
        for a, b in zip(a_all, b_all):
            a, b = a[a.confidence >= min_score], b[b.confidence >= min_score - slack]
            found[key][1] += len(a)
            if not len(a) or not len(b):
                continue
            m = box_iou(a.xyxy, b.xyxy)
            m[a.class_id[:, None] != b.class_id[None, :]] = 0
            used: set[int] = set()
            for i in np.argsort(-a.confidence):
                for j in np.argsort(-m[i]):
                    if m[i, j] < iou:
                        break
                    if j not in used:
                        used.add(int(j))
                        found[key][0] += 1
                        break
    (matched, boxes), (kept, others) = found["recall"], found["precision"]
    rates = {k: (round(n / total, 4) if total else None) for k, (n, total) in found.items()}
    return rates | {"boxes": boxes, "missed": boxes - matched, "other_boxes": others, "extra": others - kept}

"""Where models live and which one is current.

`models/<name>/` holds `model.onnx`, `model.pt` and `card.json`; `models/CURRENT` names the one in use. A model
can also be given as a folder or as an `.onnx`/`.pt` file anywhere.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .base import Detector, DetectorSettings

REPO_MODELS = Path(__file__).resolve().parents[2] / "models"


def models_dir() -> Path:
    return Path(os.environ.get("STREETORDER_MODELS", REPO_MODELS))


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


def resolve_model(spec: str | Path | None = None) -> ModelRef:
    """Turn a model name, folder or weights file (or None for the current model) into a `ModelRef`."""
    root = models_dir()
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


def load_detector(
    spec: str | Path | None = None, backend: str = "onnx", settings: DetectorSettings | None = None, threads: int | None = None
) -> Detector:
    """Build a detector for a model; `backend` is 'onnx' (serving) or 'ultralytics' (needs the train extra)."""
    ref = resolve_model(spec)
    if backend == "onnx":
        if ref.onnx is None:
            raise FileNotFoundError(f"model '{ref.name}' has no model.onnx")
        from .onnx import OnnxDetector

        return OnnxDetector(ref.onnx, settings, threads=threads)
    if backend == "ultralytics":
        if ref.pt is None:
            raise FileNotFoundError(f"model '{ref.name}' has no model.pt")
        from .ultralytics import UltralyticsDetector

        return UltralyticsDetector(ref.pt, settings)
    raise ValueError(f"unknown backend '{backend}' (use 'onnx' or 'ultralytics')")

"""Which model serves: `models/CURRENT`, moved only by promotion (through the gate) or rollback, with a history.

`models/HISTORY.json` keeps the stack of promoted versions (the last one is CURRENT) and every event with the
gate's verdict, so `streetorder rollback` is one command and an audit can see why each model went live.
CURRENT is replaced atomically (write + rename); the running service watches it (`service/runtime/model_slot.py`).
Torch-free: promotion only reads cached benchmark scores or ONNX models.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from ..detect.registry import current_name, models_dir

HISTORY = "HISTORY.json"


class PromotionError(RuntimeError):
    """Promotion or rollback refused, with the reason."""


def _read(root: Path) -> dict:
    """The history, reconciled with CURRENT: a pointer changed by hand (or PUT /models/current with persist)
    becomes the top of the stack, so rollback always returns to what served before the current model."""
    path = root / HISTORY
    doc = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"stack": [], "events": []}
    try:
        now = current_name(root)
    except FileNotFoundError:
        return doc
    if not doc["stack"] or doc["stack"][-1] != now:
        doc["stack"].append(now)
        if path.exists():
            doc["events"].append({"at": datetime.now(UTC).isoformat(timespec="seconds"), "action": "external", "to": now, "note": "CURRENT changed outside promote/rollback"})
    return doc


def _write(root: Path, doc: dict) -> None:
    tmp = root / (HISTORY + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(root / HISTORY)


def set_current(name: str, root: Path | None = None) -> None:
    root = Path(root or models_dir())
    if not (root / name / "model.onnx").is_file():
        raise PromotionError(f"model '{name}' has no {root / name / 'model.onnx'}")
    tmp = root / "CURRENT.tmp"
    tmp.write_text(name + "\n")
    tmp.replace(root / "CURRENT")


def history(root: Path | None = None) -> dict:
    return _read(Path(root or models_dir()))


def record_promotion(name: str, verdict: dict | None, root: Path | None = None, forced: bool = False) -> dict:
    """Make `name` CURRENT and push it on the history stack (after the gate has passed, or `forced`)."""
    root = Path(root or models_dir())
    doc = _read(root)
    previous = doc["stack"][-1] if doc["stack"] else None
    if previous == name:
        raise PromotionError(f"'{name}' is already the current model")
    set_current(name, root)
    doc["stack"].append(name)
    doc["events"].append({"at": datetime.now(UTC).isoformat(timespec="seconds"), "action": "promote", "from": previous, "to": name, "forced": forced, "verdict": verdict})
    _write(root, doc)
    return doc


def rollback(root: Path | None = None) -> tuple[str, str]:
    """Go back to the model promoted before the current one; returns (from, to)."""
    root = Path(root or models_dir())
    doc = _read(root)
    if len(doc["stack"]) < 2:
        raise PromotionError(f"nothing to roll back to: the history ({root / HISTORY}) holds {doc['stack'] or 'no models'}")
    old, new = doc["stack"][-1], doc["stack"][-2]
    set_current(new, root)
    doc["stack"].pop()
    doc["events"].append({"at": datetime.now(UTC).isoformat(timespec="seconds"), "action": "rollback", "from": old, "to": new})
    _write(root, doc)
    return old, new

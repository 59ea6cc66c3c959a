"""The YOLO dataset format: a `data.yaml`, image folders, and one `cls cx cy w h` text file per image."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


class DatasetError(ValueError):
    """A dataset file or folder that cannot be used, with the reason."""


@dataclass(frozen=True)
class YoloDataset:
    """A parsed `data.yaml`: class names and the image folders of each split."""

    yaml_path: Path
    names: tuple[str, ...]
    splits: dict[str, list[Path]]

    def images(self, split: str) -> list[Path]:
        if split not in self.splits:
            raise DatasetError(f"{self.yaml_path}: no '{split}' split (has: {', '.join(self.splits) or 'none'})")
        out: list[Path] = []
        for folder in self.splits[split]:
            out.extend(list_images(folder))
        return out


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def load_data_yaml(path: str | Path) -> YoloDataset:
    """Parse an ultralytics dataset file, resolving folders the way ultralytics does (`path:` or the file's folder)."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such dataset file") from None
    except yaml.YAMLError as e:
        raise DatasetError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(doc, dict) or "names" not in doc:
        raise DatasetError(f"{path}: a dataset file needs a 'names' mapping")
    names = doc["names"]
    if isinstance(names, dict):
        names = [names[k] for k in sorted(names)]
    root = Path(doc.get("path") or ".")
    if not root.is_absolute():
        root = (path.parent / root).resolve()
    splits = {}
    for split in ("train", "val", "test"):
        value = doc.get(split)
        if not value:
            continue
        folders = [value] if isinstance(value, str) else list(value)
        resolved = [Path(f) if Path(f).is_absolute() else root / f for f in folders]
        for f in resolved:
            if not f.is_dir():
                raise DatasetError(f"{path}: {split} folder {f} does not exist")
        splits[split] = resolved
    return YoloDataset(path, tuple(str(n) for n in names), splits)


def label_path(image: Path) -> Path:
    """Ultralytics' rule: the last `/images/` in the path becomes `/labels/`, the suffix becomes `.txt`."""
    parts = list(image.parts)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def read_labels(path: Path) -> np.ndarray:
    """(N, 5) float array of `cls cx cy w h`, normalized; empty when the file is missing or empty."""
    if not path.exists():
        return np.zeros((0, 5), dtype=np.float32)
    rows = [line.split()[:5] for line in path.read_text().splitlines() if line.strip()]
    return np.array(rows, dtype=np.float32).reshape(-1, 5)


def write_labels(path: Path, rows: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{int(r[0])} {r[1]:.6f} {r[2]:.6f} {r[3]:.6f} {r[4]:.6f}\n" for r in rows))


def cxcywh_to_xyxy(rows: np.ndarray) -> np.ndarray:
    cx, cy, w, h = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


def xyxy_to_cxcywh(xyxy: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = xyxy[:, 0], xyxy[:, 1], xyxy[:, 2], xyxy[:, 3]
    return np.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], axis=1)

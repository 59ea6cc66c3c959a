"""The YOLO dataset format: a `data.yaml`, image folders, and one `cls cx cy w h` text file per image.

`validate_yolo_folder` is the one check of label files: `samples import` and training's dataset building both
call it, so a bad file is reported the same way (`file:line: reason`) and never trained on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
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


def read_labels(path: Path, nc: int | None = None) -> np.ndarray:
    """(N, 5) float array of `cls cx cy w h`, normalized; empty when the file is missing or empty.

    A line that is not five numbers raises LabelError with its file and line; with `nc` (the class count), so
    do class ids out of range and coordinates outside the image."""
    if not path.exists():
        return np.zeros((0, 5), dtype=np.float32)
    rows, problems = parse_label_file(path, nc)
    if problems:
        raise LabelError(problems)
    return rows


# ---- validation --------------------------------------------------------------------------------------------

COORD_TOLERANCE = 1e-3  # rounding of 6-decimal normalized coordinates


@dataclass(frozen=True)
class LabelProblem:
    """One reason a label file cannot be used, where it is."""

    file: Path
    line: int | None
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}" if self.line is not None else f"{self.file}: {self.reason}"


class LabelError(DatasetError):
    """Label files that cannot be used; the message lists every problem as `file:line: reason`."""

    def __init__(self, problems: list[LabelProblem]) -> None:
        self.problems = list(problems)
        shown = "\n".join(f"  {p}" for p in self.problems[:50])
        more = f"\n  ... and {len(self.problems) - 50} more" if len(self.problems) > 50 else ""
        super().__init__(f"{len(self.problems)} problem(s) in label files:\n{shown}{more}")


def check_box(cx: float, cy: float, w: float, h: float) -> str | None:
    """Why a normalized `cx cy w h` box is unusable, or None."""
    if not all(math.isfinite(v) for v in (cx, cy, w, h)):
        return "coordinates are not finite numbers"
    if w <= 0 or h <= 0:
        return f"box has no area (w {w:g}, h {h:g})"
    t = COORD_TOLERANCE
    x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
    if x1 < -t or y1 < -t or x2 > 1 + t or y2 > 1 + t:
        return f"coordinates out of range: box x {x1:.4f}..{x2:.4f}, y {y1:.4f}..{y2:.4f} leaves the image (normalized 0..1)"
    return None


def parse_label_file(path: Path, nc: int | None) -> tuple[np.ndarray, list[LabelProblem]]:
    """The usable rows of a label file, and a problem for each line that is not."""
    rows, problems = [], []
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return np.zeros((0, 5), np.float32), [LabelProblem(Path(path), None, "not a UTF-8 text file")]
    for n, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        polygon = len(fields) >= 7 and len(fields) % 2 == 1  # a segment `class x1 y1 x2 y2 ...`: its bounding box, as ultralytics reads it
        if len(fields) != 5 and not polygon:
            problems.append(LabelProblem(Path(path), n, f"malformed line: expected 5 fields 'class cx cy w h' (or a polygon 'class x1 y1 x2 y2 x3 y3 ...'), got {len(fields)}"))
            continue
        try:
            values = [float(v) for v in fields]
        except ValueError:
            problems.append(LabelProblem(Path(path), n, f"malformed line: not numbers: {line.strip()[:80]!r}"))
            continue
        if polygon:
            xs, ys = values[1::2], values[2::2]
            values = [values[0], (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2, max(xs) - min(xs), max(ys) - min(ys)]
        cls = values[0]
        if not cls.is_integer() or cls < 0 or (nc is not None and cls >= nc):
            known = f" (the dataset has {nc} classes: ids 0..{nc - 1})" if nc is not None else ""
            problems.append(LabelProblem(Path(path), n, f"unknown class id {fields[0]}{known}"))
            continue
        reason = check_box(*values[1:])
        if reason:
            problems.append(LabelProblem(Path(path), n, reason))
            continue
        rows.append(values)
    return np.array(rows, dtype=np.float32).reshape(-1, 5), problems


@dataclass
class FolderCheck:
    """A YOLO folder after validation: the usable (image, label rows) pairs and every problem found."""

    pairs: list[tuple[Path, np.ndarray]] = field(default_factory=list)
    problems: list[LabelProblem] = field(default_factory=list)

    def require_valid(self) -> FolderCheck:
        if self.problems:
            raise LabelError(self.problems)
        return self


def validate_yolo_folder(images_dir: Path, labels_dir: Path, nc: int) -> FolderCheck:
    """Check every label file against the images: malformed lines, unknown class ids, coordinates out of range,
    images without a label file (a background image needs an empty one, so a lost file is never taken for
    "nothing here"), and label files without an image."""
    images_dir, labels_dir = Path(images_dir), Path(labels_dir)
    out = FolderCheck()
    if not images_dir.is_dir():
        out.problems.append(LabelProblem(images_dir, None, "no such image folder"))
        return out
    images = list_images(images_dir)
    stems = {p.relative_to(images_dir).with_suffix("") for p in images}
    for image in images:
        label = labels_dir / image.relative_to(images_dir).with_suffix(".txt")
        if not label.is_file():
            out.problems.append(LabelProblem(image, None, f"image without labels: no {label} (an image with no objects needs an empty label file)"))
            continue
        rows, problems = parse_label_file(label, nc)
        out.problems.extend(problems)
        if not problems:
            out.pairs.append((image, rows))
    if labels_dir.is_dir():
        for label in sorted(labels_dir.rglob("*.txt")):
            if label.relative_to(labels_dir).with_suffix("") not in stems:
                out.problems.append(LabelProblem(label, None, f"labels without an image: no image {label.stem}.* in {images_dir}"))
    return out


def write_labels(path: Path, rows: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{int(r[0])} {r[1]:.6f} {r[2]:.6f} {r[3]:.6f} {r[4]:.6f}\n" for r in rows))


def cxcywh_to_xyxy(rows: np.ndarray) -> np.ndarray:
    cx, cy, w, h = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


def xyxy_to_cxcywh(xyxy: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = xyxy[:, 0], xyxy[:, 1], xyxy[:, 2], xyxy[:, 3]
    return np.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], axis=1)

"""Sample versions: the labelled batches annotators export, as `streetorder retrain` and the benchmark see them.

A sample version is a YOLO folder under the samples root (`var/samples/<version>/` by default, or
$STREETORDER_SAMPLES): `images/`, `labels/` and a manifest JSON naming its class list (`classes`, or
`names`). Labels are remapped to the training class list by name, so a version exported before a class was
added stays valid. A fixed fifth of every version (by a hash of the image name) is held out for the benchmark
and never trained on.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import dataclass
from pathlib import Path

from ..config.settings import PipelineSettings
from ..formats.yolo import DatasetError, label_path, list_images
from ..paths import SAMPLES_DIR

DEFAULT_ROOT = SAMPLES_DIR
MANIFESTS = ("manifest.json", "samples.json")
HOLDOUT_MOD = 5  # 1 image in 5 of every version is benchmark-only


def samples_root(root: str | Path | None = None) -> Path:
    return Path(root or PipelineSettings().samples or DEFAULT_ROOT)


def is_holdout(image: Path) -> bool:
    return zlib.crc32(image.stem.encode()) % HOLDOUT_MOD == 0


@dataclass(frozen=True)
class SampleVersion:
    path: Path
    classes: tuple[str, ...]
    manifest_sha256: str

    @property
    def name(self) -> str:
        return self.path.name

    def images(self, part: str = "all") -> list[Path]:
        """'train' (never the holdout), 'holdout' (benchmark only) or 'all'."""
        imgs = list_images(self.path / "images")
        if part == "train":
            return [p for p in imgs if not is_holdout(p)]
        if part == "holdout":
            return [p for p in imgs if is_holdout(p)]
        return imgs

    def describe(self) -> dict:
        return {"name": self.name, "path": str(self.path), "manifest_sha256": self.manifest_sha256, "classes": list(self.classes),
                "images": len(self.images()), "train": len(self.images("train")), "holdout": len(self.images("holdout"))}


def read_version(folder: Path) -> SampleVersion:
    folder = Path(folder)
    manifest = next((folder / m for m in MANIFESTS if (folder / m).is_file()), None)
    if manifest is None or not (folder / "images").is_dir():
        raise DatasetError(f"{folder}: not a sample version (needs images/, labels/ and {' or '.join(MANIFESTS)})")
    raw = manifest.read_bytes()
    doc = json.loads(raw)
    classes = doc.get("classes") or doc.get("names")
    if isinstance(classes, dict):
        classes = [classes[k] for k in sorted(classes, key=int)]
    if not classes:
        raise DatasetError(f"{manifest}: no class list ('classes')")
    return SampleVersion(folder, tuple(classes), hashlib.sha256(raw).hexdigest())


def find_versions(root: str | Path | None = None) -> list[SampleVersion]:
    """Every sample version under the root, in name order (a version is never rewritten, so names are stable)."""
    root = samples_root(root)
    if not root.is_dir():
        return []
    return [read_version(p) for p in sorted(root.iterdir()) if p.is_dir() and any((p / m).is_file() for m in MANIFESTS) and (p / "images").is_dir()]


def remap_labels(version: SampleVersion, image: Path, classes: tuple[str, ...]):
    """The image's label rows with class ids of `classes`; DatasetError for a class the list lacks."""
    import numpy as np

    from ..formats.yolo import read_labels

    rows = read_labels(label_path(image))
    if not len(rows):
        return rows
    out = rows.copy()
    for i, c in enumerate(rows[:, 0].astype(int)):
        if not 0 <= c < len(version.classes):
            raise DatasetError(f"{label_path(image)}: class id {c} is not in {version.name}'s class list ({len(version.classes)} classes)")
        name = version.classes[c]
        if name not in classes:
            raise DatasetError(f"{label_path(image)}: class '{name}' is not a training class; add it to datasets/classes.yaml")
        out[i, 0] = classes.index(name)
    return out.astype(np.float32)

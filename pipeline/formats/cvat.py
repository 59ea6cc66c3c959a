"""CVAT's "COCO 1.0" import: a zip with `annotations/instances_default.json` (and the images under `images/`).
CVAT's export in the same format is read back from the zip, its folder, or the JSON itself."""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path

from .base import LabelledImage, ReadResult
from .coco import read_coco, write_coco
from .yolo import LabelProblem

ANNOTATIONS = "annotations/instances_default.json"


def write_cvat(images: list[LabelledImage], classes: tuple[str, ...], zip_path: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ann = Path(tmp) / ANNOTATIONS
        write_coco(images, classes, ann)
        zip_path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as z:
            z.write(ann, ANNOTATIONS)
            for im in images:
                z.write(im.path, f"images/{im.name}")


def read_cvat(path: Path, classes: tuple[str, ...]) -> ReadResult:
    path = Path(path)
    if path.is_dir():
        found = path / ANNOTATIONS if (path / ANNOTATIONS).is_file() else next(iter(sorted(path.rglob("instances_*.json"))), None)
        if found is None:
            out = ReadResult()
            out.problems.append(LabelProblem(path, None, f"no {ANNOTATIONS} in this folder (export the task from CVAT as COCO 1.0)"))
            return out
        return read_coco(found, classes)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z, tempfile.TemporaryDirectory() as tmp:
            names = [n for n in z.namelist() if n.endswith(".json") and "instances" in Path(n).name]
            if not names:
                out = ReadResult()
                out.problems.append(LabelProblem(path, None, f"no {ANNOTATIONS} in this zip (export the task from CVAT as COCO 1.0)"))
                return out
            z.extract(names[0], tmp)
            result = read_coco(Path(tmp) / names[0], classes)
            for p in result.problems:
                object.__setattr__(p, "file", Path(f"{path}!{names[0]}"))
            return result
    return read_coco(path, classes)

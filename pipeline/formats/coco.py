"""COCO detection JSON: written with supervision (category ids are class index + 1, as CVAT expects), read
with the same checks as every other format."""

from __future__ import annotations

import json
from pathlib import Path

from .base import LabelledImage, ReadResult, check_pixel_box, detection_dataset
from .yolo import LabelProblem


def write_coco(images: list[LabelledImage], classes: tuple[str, ...], path: Path) -> None:
    """`path`: the annotations JSON; images are referenced by file name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    detection_dataset(images, classes).as_coco(annotations_path=str(path))


def read_coco(path: Path, classes: tuple[str, ...]) -> ReadResult:
    out = ReadResult()
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        cats = {int(c["id"]): str(c["name"]) for c in doc["categories"]}
        images = {int(i["id"]): i for i in doc["images"]}
        anns = doc.get("annotations") or []
    except (OSError, ValueError, KeyError, TypeError) as e:
        out.problems.append(LabelProblem(Path(path), None, f"not a COCO detection file: {type(e).__name__}: {e}"))
        return out
    for im in images.values():
        out.boxes.setdefault(Path(str(im.get("file_name", ""))).name, [])
    for n, a in enumerate(anns):
        where = f"annotation {n} (id {a.get('id')})"
        image = images.get(a.get("image_id"))
        if image is None:
            out.problems.append(LabelProblem(Path(path), None, f"{where}: labels without an image: no image id {a.get('image_id')}"))
            continue
        name = cats.get(a.get("category_id"))
        if name is None:
            out.problems.append(LabelProblem(Path(path), None, f"{where}: unknown category id {a.get('category_id')}"))
            continue
        bbox = a.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4):
            out.problems.append(LabelProblem(Path(path), None, f"{where}: malformed bbox {bbox!r} (expected [x, y, width, height])"))
            continue
        x, y, w, h = bbox
        try:
            xyxy = (float(x), float(y), float(x) + float(w), float(y) + float(h))
        except (TypeError, ValueError):
            out.problems.append(LabelProblem(Path(path), None, f"{where}: malformed bbox {bbox!r}"))
            continue
        problem, box = check_pixel_box(Path(path), None, name, xyxy, int(image.get("width") or 0), int(image.get("height") or 0), classes)
        if problem:
            out.problems.append(LabelProblem(problem.file, None, f"{where}: {problem.reason}"))
        else:
            out.boxes[Path(str(image["file_name"])).name].append(box)
    return out

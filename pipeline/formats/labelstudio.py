"""Label Studio: JSON tasks with `rectanglelabels` results in percent of the image, the labels as the task's
annotation and the model's boxes as its prediction, plus the labelling config that names the classes.

Images are referenced as Label Studio's local-files URLs (`/data/local-files/?d=images/<name>`): serve the
version folder with LOCAL_FILES_DOCUMENT_ROOT, or upload the images and keep `data.sample_id`, by which
`samples import` finds each task's frame again.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from xml.sax.saxutils import quoteattr

from .base import Box, LabelledImage, ReadResult, check_pixel_box
from .yolo import LabelProblem

SAMPLE_ID = re.compile(r"case\d+-[0-9a-f]{12}")


def _results(boxes: tuple[Box, ...], w: int, h: int) -> list[dict]:
    return [
        {
            "id": f"r{i}", "type": "rectanglelabels", "from_name": "label", "to_name": "image", "original_width": w, "original_height": h, "image_rotation": 0,
            "value": {"x": x1 / w * 100, "y": y1 / h * 100, "width": (x2 - x1) / w * 100, "height": (y2 - y1) / h * 100, "rotation": 0, "rectanglelabels": [c]},
        }
        for i, (c, (x1, y1, x2, y2)) in enumerate(boxes)
    ]


def labelling_config(classes: tuple[str, ...]) -> str:
    labels = "\n".join(f"    <Label value={quoteattr(c)}/>" for c in classes)
    return f'<View>\n  <Image name="image" value="$image"/>\n  <RectangleLabels name="label" toName="image">\n{labels}\n  </RectangleLabels>\n</View>\n'


def write_labelstudio(images: list[LabelledImage], classes: tuple[str, ...], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tasks = []
    for im in images:
        sample_id = Path(im.name).stem
        task = {
            "data": {"image": f"/data/local-files/?d=images/{im.name}", "sample_id": sample_id},
            "meta": im.meta,
            "annotations": [{"result": _results(im.boxes, im.width, im.height), "ground_truth": False}],
        }
        if im.predictions:
            task["predictions"] = [{"model_version": str(im.meta.get("model") or "model"), "result": _results(im.predictions, im.width, im.height)}]
        tasks.append(task)
    (folder / "tasks.json").write_text(json.dumps(tasks, indent=1, ensure_ascii=False), encoding="utf-8")
    (folder / "config.xml").write_text(labelling_config(classes), encoding="utf-8")


def read_labelstudio(path: Path, classes: tuple[str, ...], sizes: dict[str, tuple[int, int]]) -> ReadResult:
    """`path`: Label Studio's JSON export (or its folder with tasks.json). `sizes`: sample id -> frame size, for
    results that do not carry `original_width`."""
    path = Path(path)
    if path.is_dir():
        path = path / "tasks.json"
    out = ReadResult()
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(tasks, list):
            raise ValueError("expected a JSON list of tasks")
    except (OSError, ValueError) as e:
        out.problems.append(LabelProblem(path, None, f"not a Label Studio JSON export: {e}"))
        return out
    for n, task in enumerate(tasks):
        where = f"task {n}"
        if not isinstance(task, dict):
            out.problems.append(LabelProblem(path, None, f"{where}: malformed task (not a JSON object)"))
            continue
        data = task.get("data") or {}
        sample_id = data.get("sample_id") or next(iter(SAMPLE_ID.findall(str(data.get("image", "")))), None)
        if not sample_id:
            out.problems.append(LabelProblem(path, None, f"{where}: labels without an image: no sample_id and no sample id in its image URL"))
            continue
        name = f"{sample_id}.jpg"
        out.sample_ids[name] = sample_id
        done = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
        if not done:
            out.problems.append(LabelProblem(path, None, f"{where} ({sample_id}): image without labels: no annotation submitted (skip the task or submit it empty)"))
            continue
        boxes = out.boxes.setdefault(name, [])
        for k, r in enumerate(done[-1].get("result") or []):
            if r.get("type") != "rectanglelabels":
                continue
            v = r.get("value") or {}
            w, h = r.get("original_width") or sizes.get(sample_id, (0, 0))[0], r.get("original_height") or sizes.get(sample_id, (0, 0))[1]
            labels = v.get("rectanglelabels") or []
            try:
                x, y, bw, bh = (float(v[key]) for key in ("x", "y", "width", "height"))
            except (KeyError, TypeError, ValueError):
                out.problems.append(LabelProblem(path, None, f"{where} ({sample_id}) result {k}: malformed rectangle {v!r}"))
                continue
            if len(labels) != 1 or float(v.get("rotation") or 0) != 0:
                out.problems.append(LabelProblem(path, None, f"{where} ({sample_id}) result {k}: a box needs exactly one label and no rotation"))
                continue
            xyxy = (x / 100 * w, y / 100 * h, (x + bw) / 100 * w, (y + bh) / 100 * h)
            problem, box = check_pixel_box(path, None, str(labels[0]), xyxy, int(w), int(h), classes)
            if problem:
                out.problems.append(LabelProblem(path, None, f"{where} ({sample_id}) result {k}: {problem.reason}"))
            else:
                boxes.append(box)
    return out

"""Bad label files are reported as `file:line: reason` and never trained on or imported: one validation
(`validate_yolo_folder` and its per-box check) behind `samples import` and training's dataset building."""

from __future__ import annotations

import json

import pytest

from pipeline.formats.coco import read_coco
from pipeline.formats.labelstudio import read_labelstudio
from pipeline.formats.yolo import LabelError, read_labels, validate_yolo_folder
from pipeline.train.dataset import Sources, build_dataset

from tests.cases.factory import jpeg


def _folder(root, labels: dict[str, str | None], extra_labels: dict[str, str] | None = None):
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for stem, text in labels.items():
        (root / "images" / f"{stem}.jpg").write_bytes(jpeg(len(stem)))
        if text is not None:
            (root / "labels" / f"{stem}.txt").write_text(text)
    for stem, text in (extra_labels or {}).items():
        (root / "labels" / f"{stem}.txt").write_text(text)
    return root


BAD = {
    "good": "1 0.5 0.5 0.2 0.2\n",
    "background": "",  # an empty file: an image with no objects, which is fine
    "out-of-range": "0 0.5 0.5 0.2 0.2\n0 0.95 0.5 0.2 0.2\n",
    "unknown-class": "14 0.5 0.5 0.2 0.2\n",
    "malformed": "1 0.5 0.5 0.2\n",
    "not-numbers": "bin 0.5 0.5 0.2 0.2\n",
    "no-area": "1 0.5 0.5 0 0.2\n",
    "no-labels": None,
}


def test_every_kind_of_bad_label_file_is_reported_with_file_and_line(tmp_path):
    root = _folder(tmp_path / "batch", BAD, {"orphan": "1 0.5 0.5 0.2 0.2\n"})
    check = validate_yolo_folder(root / "images", root / "labels", nc=12)
    messages = [str(p) for p in check.problems]
    lb = root / "labels"
    assert f"{lb}/out-of-range.txt:2: coordinates out of range: box x 0.8500..1.0500, y 0.4000..0.6000 leaves the image (normalized 0..1)" in messages
    assert f"{lb}/unknown-class.txt:1: unknown class id 14 (the dataset has 12 classes: ids 0..11)" in messages
    assert any(m.startswith(f"{lb}/malformed.txt:1: malformed line: expected 5 fields") for m in messages)
    assert any(m.startswith(f"{lb}/not-numbers.txt:1: malformed line: not numbers") for m in messages)
    assert any(m.startswith(f"{lb}/no-area.txt:1: box has no area") for m in messages)
    assert any(m.startswith(f"{root / 'images'}/no-labels.jpg: image without labels") for m in messages)
    assert any(m.startswith(f"{lb}/orphan.txt: labels without an image") for m in messages)
    assert len(messages) == 7
    # only whole, valid files are usable: not even the good line of a file with a bad one
    assert sorted(p.stem for p, _ in check.pairs) == ["background", "good"]
    with pytest.raises(LabelError, match="7 problem"):
        check.require_valid()
    with pytest.raises(LabelError, match="unknown-class.txt:1: unknown class id 14"):
        read_labels(lb / "unknown-class.txt", nc=12)


def test_a_polygon_line_is_read_as_its_bounding_box(tmp_path):
    path = tmp_path / "seg.txt"
    path.write_text("2 0.1 0.2 0.3 0.2 0.3 0.6 0.1 0.6\n")
    assert read_labels(path)[0].tolist() == pytest.approx([2, 0.2, 0.4, 0.2, 0.4])


def test_training_refuses_a_sample_folder_with_bad_labels_before_it_builds_anything(tmp_path):
    root = _folder(tmp_path / "v0001", {"good": "1 0.5 0.5 0.2 0.2\n", "bad": "99 0.5 0.5 0.2 0.2\n"})
    sources = Sources(tmp_path / "missing-gcn", tmp_path / "missing-streets", tmp_path / "missing.yaml")
    with pytest.raises(LabelError, match=r"bad\.txt:1: unknown class id 99"):
        build_dataset(sources, tmp_path / "out", tmp_path / "teacher.pt", pseudo_conf=0.4, extra=(root,))
    assert not (tmp_path / "out").exists()


def test_coco_and_label_studio_files_get_the_same_checks(tmp_path):
    classes = ("garbage", "garbage_bin")
    coco = tmp_path / "coco.json"
    coco.write_text(json.dumps({
        "categories": [{"id": 1, "name": "garbage"}, {"id": 2, "name": "garbage_bin"}, {"id": 3, "name": "unicorn"}],
        "images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 50}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20]},
            {"id": 2, "image_id": 1, "category_id": 2, "bbox": [90, 10, 30, 20]},
            {"id": 3, "image_id": 7, "category_id": 1, "bbox": [1, 1, 2, 2]},
            {"id": 4, "image_id": 1, "category_id": 9, "bbox": [1, 1, 2, 2]},
            {"id": 5, "image_id": 1, "category_id": 3, "bbox": [1, 1, 2, 2]},
            {"id": 6, "image_id": 1, "category_id": 1, "bbox": [1, 1]},
        ],
    }))
    r = read_coco(coco, classes)
    assert r.boxes == {"a.jpg": [("garbage", (10.0, 10.0, 30.0, 30.0))]}
    reasons = [p.reason for p in r.problems]
    assert reasons[0].startswith("annotation 1 (id 2): coordinates out of range")
    assert reasons[1:] == [
        "annotation 2 (id 3): labels without an image: no image id 7",
        "annotation 3 (id 4): unknown category id 9",
        "annotation 4 (id 5): unknown class 'unicorn' (known: garbage, garbage_bin)",
        "annotation 5 (id 6): malformed bbox [1, 1] (expected [x, y, width, height])",
    ]
    ls = tmp_path / "tasks.json"
    rect = lambda label, x: {"type": "rectanglelabels", "original_width": 100, "original_height": 50, "value": {"x": x, "y": 10, "width": 20, "height": 20, "rotation": 0, "rectanglelabels": [label]}}  # noqa: E731
    ls.write_text(json.dumps([
        {"data": {"sample_id": "case1-aaaaaaaaaaaa"}, "annotations": [{"result": [rect("garbage", 10), rect("garbage", 95), rect("cart", 10)]}]},
        {"data": {"sample_id": "case2-bbbbbbbbbbbb"}, "annotations": []},
        {"data": {"image": "/data/upload/x.jpg"}, "annotations": [{"result": []}]},
    ]))
    r = read_labelstudio(ls, classes, {})
    assert r.boxes == {"case1-aaaaaaaaaaaa.jpg": [("garbage", (10.0, 5.0, 30.0, 15.0))]}
    reasons = [p.reason for p in r.problems]
    assert reasons[0].startswith("task 0 (case1-aaaaaaaaaaaa) result 1: coordinates out of range")
    assert reasons[1] == "task 0 (case1-aaaaaaaaaaaa) result 2: unknown class 'cart' (known: garbage, garbage_bin)"
    assert reasons[2].startswith("task 1 (case2-bbbbbbbbbbbb): image without labels")
    assert reasons[3].startswith("task 2: labels without an image")

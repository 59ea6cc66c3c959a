"""Training side: pseudo-label selection, the merged dataset, night augmentation, the trainer hook."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline.formats.yolo import label_path, list_images, read_labels
from pipeline.samples.classes import MERGED_CLASSES, merged_id
from pipeline.train.dataset import Sources, build_dataset
from pipeline.train.night import NightAugment, simulate_night
from pipeline.train.pseudo_label import TeacherBox, select_pseudo_labels
from pipeline.train.cli import _without_stage_flags

from tests.conftest import COCO_PT, GARBAGE_CN, REPO, STREETS_IN, val_images


def test_pseudo_labels_keep_confident_boxes_that_do_not_sit_on_a_human_label():
    person = TeacherBox(merged_id("person"), 0.8, (0.1, 0.1, 0.3, 0.6))
    faint = TeacherBox(merged_id("person"), 0.3, (0.5, 0.1, 0.6, 0.4))
    chair_on_bin = TeacherBox(merged_id("chair"), 0.7, (0.62, 0.5, 0.82, 0.9))
    human_bin = np.array([[0.6, 0.5, 0.8, 0.9]])
    kept, dropped = select_pseudo_labels([person, faint, chair_on_bin], human_bin, conf=0.4)
    assert kept == [person] and dropped == 1


def _tiny_sources(tmp_path: Path) -> tuple[Sources, list[Path], list[Path]]:
    gcn = tmp_path / "gcn"
    for split, n in (("train", 3), ("val", 2)):
        for img in sorted((GARBAGE_CN / split / "images").glob("*.jpg"))[:n]:
            (gcn / split / "images").mkdir(parents=True, exist_ok=True)
            (gcn / split / "labels").mkdir(parents=True, exist_ok=True)
            os.symlink(img, gcn / split / "images" / img.name)
            (gcn / split / "labels" / (img.stem + ".txt")).write_text(label_path(img).read_text())
    streets = sorted((STREETS_IN / "images").glob("*.jpg"))
    used = [streets[100], streets[101]]
    held, excluded = streets[0], streets[102]
    split = tmp_path / "split.yaml"
    split.write_text(yaml.safe_dump({"exclude": {excluded.name: "test"}, "holdout": [held.name]}))
    sin = tmp_path / "sin"
    (sin / "images").mkdir(parents=True)
    (sin / "labels").mkdir(parents=True)
    for img in used + [held, excluded]:
        os.symlink(img, sin / "images" / img.name)
        (sin / "labels" / (img.stem + ".txt")).write_text(label_path(img).read_text())
    return Sources(gcn, sin, split), used, [held, excluded]


def test_merged_dataset_from_a_cached_teacher(tmp_path):
    sources, used, unused = _tiny_sources(tmp_path)
    out = tmp_path / "data"
    images = [*list_images(sources.garbage_cn / "train" / "images"), *list_images(sources.garbage_cn / "val" / "images"), *used]
    out.mkdir()
    # a teacher cache as run_teacher writes it: one confident person, one faint bicycle on every image
    cache = {
        "key": {"weights": str(Path(COCO_PT).resolve()), "imgsz": 640, "min_conf": 0.1, "n": len(images)},
        "boxes": {p.name: [[merged_id("person"), 0.9, [0.01, 0.01, 0.05, 0.2]], [merged_id("bicycle"), 0.2, [0.5, 0.5, 0.6, 0.6]]] for p in images},
    }
    (out / "teacher_cache.json").write_text(json.dumps(cache))
    report = build_dataset(sources, out, COCO_PT, pseudo_conf=0.4)
    assert report.images == {"train_garbage_cn": 3, "train_background_streets": 2, "val_garbage_cn": 2}
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert list(data["names"].values()) == list(MERGED_CLASSES)
    names = {p.name for p in (out / "train" / "images").iterdir()}
    assert {f"streets_{p.name}" for p in used} <= names and not any(p.name in n for p in unused for n in names)
    assert list((out / "train" / "images").iterdir())
    for img in (out / "train" / "images").iterdir():
        assert img.is_symlink()
        rows = read_labels(label_path(img))
        assert (rows[:, 0] == merged_id("person")).sum() == 1 and merged_id("bicycle") not in rows[:, 0]
        if img.name.startswith("streets_"):  # published 'bike' labels become motorcycle, 'bus' is dropped
            src = read_labels(label_path(STREETS_IN / "images" / img.name.removeprefix("streets_")))
            assert (rows[:, 0] == merged_id("motorcycle")).sum() == (src[:, 0] == 0).sum()
        else:
            src = read_labels(label_path(GARBAGE_CN / "train" / "images" / img.name.removeprefix("gcn_")))
            assert np.allclose(rows[: len(src)], src, atol=1e-5)  # human labels untouched, ids unchanged


def test_night_simulation_is_dark_noisy_and_seeded():
    day = np.ascontiguousarray(np.asarray(__import__("cv2").imread(str(val_images(1)[0]))))
    a, b, c = simulate_night(day, seed=3), simulate_night(day, seed=3), simulate_night(day, seed=4)
    assert a.shape == day.shape and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.mean() < day.mean() * 0.6
    grays = [simulate_night(day, seed=s) for s in range(20)]
    assert any(np.array_equal(g[..., 0], g[..., 2]) for g in grays)  # some are infrared (gray)
    assert any(not np.array_equal(g[..., 0], g[..., 2]) for g in grays)  # some keep colour


def test_night_augment_touches_only_the_image():
    np.random.seed(0)
    aug = NightAugment(p=1.0)
    img = np.full((64, 64, 3), 200, np.uint8)
    labels = {"img": img, "cls": np.array([[1]]), "other": "kept"}
    out = aug(dict(labels))
    assert out["img"].mean() < 120 and out["cls"] is labels["cls"] and out["other"] == "kept"
    assert NightAugment(p=0.0)(dict(labels))["img"] is img


@pytest.mark.slow
def test_trainer_adds_night_before_format_and_keeps_it_after_mosaic_closes(tmp_path):
    from ultralytics.data.augment import Format

    from pipeline.train.trainer import _street_trainer

    sources, _, _ = _tiny_sources(tmp_path)
    data = tmp_path / "data.yaml"
    data.write_text(yaml.safe_dump({"path": str(sources.garbage_cn), "train": "train/images", "val": "val/images", "names": {0: "garbage", 1: "garbage_bin", 2: "overflow"}}))
    trainer = _street_trainer(0.5, workers=0, threads=1)(overrides=dict(model=str(COCO_PT), data=str(data), imgsz=64, epochs=1, device="cpu", plots=False, project=str(tmp_path / "runs")))
    trainer.model = trainer.get_model(cfg="yolo11n.yaml", weights=None, verbose=False)
    ds = trainer.build_dataset(str(sources.garbage_cn / "train" / "images"), mode="train", batch=2)
    kinds = [type(t).__name__ for t in ds.transforms.transforms]
    assert kinds[-2:] == ["NightAugment", "Format"], kinds
    ds.close_mosaic(trainer.args)
    assert [type(t).__name__ for t in ds.transforms.transforms][-2:] == ["NightAugment", "Format"]
    assert isinstance(ds.transforms.transforms[-1], Format)
    val = trainer.build_dataset(str(sources.garbage_cn / "val" / "images"), mode="val", batch=2)
    assert "NightAugment" not in [type(t).__name__ for t in val.transforms.transforms]


def test_recorded_command_drops_stage_flags():
    assert _without_stage_flags(["train", "--stage", "measure", "--imgsz", "320", "--resume", "--stage=fit"]) == ["train", "--imgsz", "320"]


def test_streets_split_lists_are_real_files():
    doc = yaml.safe_load((REPO / "datasets" / "streets-in-split.yaml").read_text())
    names = {p.name for p in (STREETS_IN / "images").glob("*.jpg")}
    assert set(doc["exclude"]) <= names and set(doc["holdout"]) <= names and len(doc["holdout"]) == 78


def test_shipped_cards_render_and_state_their_targets():
    """Every shipped card.json with metrics renders to the README beside it, with its version's verdict."""
    from pipeline.detect import resolve_model
    from pipeline.paths import MODELS_DIR as REPO_MODELS
    from pipeline.train.card import render_markdown

    cards = [resolve_model(p.parent) for p in sorted(REPO_MODELS.glob("*/card.json"))]
    trained = [r for r in cards if "metrics" in r.card]
    assert {r.name for r in trained} >= {"street-v1", "street-v2"}
    for ref in trained:
        text = render_markdown(ref.card)
        assert text == (ref.onnx.parent / "README.md").read_text(), ref.name
    v1, v2 = (next(r for r in trained if r.name == n) for n in ("street-v1", "street-v2"))
    assert "Target for v1: mAP50 ≥ 0.65" in render_markdown(v1.card)
    text = render_markdown(v2.card)
    assert "Targets for v2" in text and "Cue classes" in text and "Cost per frame" in text and "Against street-v1" in text
    assert v2.card["cue_model"] == {"name": "yolo11n-coco", "imgsz": 640}

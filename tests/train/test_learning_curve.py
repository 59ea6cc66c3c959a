"""`streetorder bench learning-curve` at a tiny size: the result's shape, the budgets in order, and picks that are
the same for the same seed and nested (a larger budget holds every image of a smaller one)."""

from __future__ import annotations

import json
import shutil

import pytest

from pipeline.cli import main

from tests.conftest import REPO
from pipeline.train.learning_curve import CurveConfig, pick_images

pytestmark = pytest.mark.slow

pytest.importorskip("ultralytics")


def test_picks_are_seeded_and_nested():
    a_labelled, a_streets = pick_images(CurveConfig(seed=3))
    b_labelled, b_streets = pick_images(CurveConfig(seed=3))
    other, _ = pick_images(CurveConfig(seed=4))
    assert a_labelled == b_labelled and a_streets == b_streets
    assert a_labelled[:25] != other[:25]
    split = (CurveConfig().streets_split).read_text()
    assert not any(p.name in split for p in a_streets)  # no held-out or excluded street trains


def test_learning_curve_command(tmp_path, capsys):
    out = tmp_path / "curve.json"
    argv = ["bench", "learning-curve", "--budgets", "4,2", "--epochs", "1", "--imgsz", "64", "--val-images", "6", "--workdir", str(tmp_path / "work"), "--out", str(out)]
    assert main(argv) == 0
    table = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["class_name"] == "overflow" and result["val_images"] == 6 and result["val_boxes"] > 0
    runs = result["budgets"]
    assert [r["budget"] for r in runs] == [2, 4]  # ascending, whatever order they were given in
    assert [r["background_images"] for r in runs] == [1, 2]
    assert 0 < runs[0]["labelled_boxes"] < runs[1]["labelled_boxes"]  # every picked image holds at least one box
    assert runs[0]["epochs"] >= runs[1]["epochs"] >= 1 and all(r["train_seconds"] > 0 for r in runs)
    assert all(r["ap50"] is None or 0 <= r["ap50_95"] <= r["ap50"] <= 1 for r in runs)
    assert "AP50-95" in table and len(table.strip().splitlines()) == 4

    # The 4-image set holds the 2-image set: the same files, the same labels (class 80 for the new class).
    small, large = (tmp_path / "work" / f"n{n:04d}" / "labels" for n in (2, 4))
    assert {p.name for p in small.iterdir()} < {p.name for p in large.iterdir()}
    for p in small.iterdir():
        assert p.read_text() == (large / p.name).read_text()
    assert sum(line.startswith("80 ") for p in large.iterdir() for line in p.read_text().splitlines()) == runs[1]["labelled_boxes"]


def test_the_curve_goes_into_the_model_card_and_survives_a_re_render(tmp_path):
    import json

    from pipeline.train.card import add_to_card, render_markdown
    from pipeline.train.learning_curve import card_entry

    folder = tmp_path / "model"
    shutil.copytree(REPO / "models" / "street-v2", folder, ignore=shutil.ignore_patterns("*.onnx", "*.pt"))
    result = {"class_name": "overflow", "base": "yolo11n-coco.pt", "imgsz": 320, "seed": 0, "val_images": 391, "val_boxes": 421, "budgets": [
        {"budget": 25, "background_images": 12, "labelled_boxes": 42, "epochs": 95, "train_seconds": 600.0, "ap50": 0.61, "ap50_95": 0.4},
        {"budget": 50, "background_images": 25, "labelled_boxes": 80, "epochs": 57, "train_seconds": 600.0, "ap50": 0.70, "ap50_95": 0.48},
        {"budget": 100, "background_images": 50, "labelled_boxes": 168, "epochs": 28, "train_seconds": 600.0, "ap50": 0.72, "ap50_95": 0.5},
    ]}
    add_to_card(folder, "labelling_budget", card_entry(result, "streetorder bench learning-curve --card x"))
    card = json.loads((folder / "card.json").read_text())
    assert card["labelling_budget"]["result"] == result
    text = render_markdown(card)
    assert text == (folder / "README.md").read_text()  # the section comes from the card, so a re-render keeps it
    assert "| 50 | 80 | 25 | 57 | 600 | 0.7 | 0.48 |" in text and "50 labelled images came within 0.05 AP50 of the best budget" in text

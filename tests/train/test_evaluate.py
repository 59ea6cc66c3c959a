"""`streetorder evaluate`: the shipped ONNX model on YOLO datasets, including ones that use a few of its classes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.formats.yolo import DatasetError, load_data_yaml
from pipeline.train.evaluate import evaluate_model

from tests.conftest import GARBAGE_CN, REPO, STREETS_IN, val_images

STREETORDER = str(Path(sys.executable).parent / "streetorder")


@pytest.fixture(scope="module")
def small_val(tmp_path_factory) -> Path:
    """60 garbage-cn val images with their labels and garbage-cn's own 3-class data.yaml."""
    root = tmp_path_factory.mktemp("gcn")
    for sub in ("images", "labels"):
        (root / "val" / sub).mkdir(parents=True)
    for img in val_images(60):
        os.symlink(img, root / "val" / "images" / img.name)
        os.symlink(GARBAGE_CN / "val" / "labels" / (img.stem + ".txt"), root / "val" / "labels" / (img.stem + ".txt"))
    (root / "data.yaml").write_text(yaml.safe_dump({"val": "val/images", "names": {0: "garbage", 1: "garbage_bin", 2: "overflow"}}))
    return root / "data.yaml"


@pytest.mark.slow
def test_cli_json_on_a_three_class_dataset(small_val):
    r = subprocess.run([STREETORDER, "evaluate", "--data", str(small_val), "--json"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert {"map50", "map50_95", "per_class"} <= set(report)
    assert set(report["per_class"]) == {"garbage", "garbage_bin", "overflow"}
    assert report["images"] == 60 and 0.3 < report["map50"] <= 1 and report["map50_95"] < report["map50"]
    assert sum(c["instances"] for c in report["per_class"].values()) > 100


@pytest.mark.slow
def test_onnx_and_pt_agree_on_map(small_val):
    onnx = evaluate_model(small_val, progress=False)
    pt = evaluate_model(small_val, backend="ultralytics", progress=False)
    assert abs(onnx["map50"] - pt["map50"]) < 0.02


@pytest.mark.slow
def test_night_copy_is_harder_but_not_hopeless(small_val):
    day = evaluate_model(small_val, progress=False)
    night = evaluate_model(small_val, night=True, progress=False)
    assert night["map50"] < day["map50"] and night["map50"] > 0.5 * day["map50"]


def test_dataset_with_classes_the_model_lacks(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "data.yaml").write_text(yaml.safe_dump({"val": "images", "names": {0: "bike", 1: "bus", 2: "car"}, "path": str(STREETS_IN)}))
    with pytest.raises(DatasetError, match=r"class\(es\) \['bike', 'bus'\] are not known"):
        evaluate_model(tmp_path / "data.yaml", progress=False)


@pytest.mark.slow
def test_bad_dataset_files(tmp_path):
    with pytest.raises(DatasetError, match="no such dataset file"):
        evaluate_model(tmp_path / "none.yaml")
    (tmp_path / "d.yaml").write_text("names: [garbage]\nval: missing/images\n")
    with pytest.raises(DatasetError, match="does not exist"):
        evaluate_model(tmp_path / "d.yaml")
    r = subprocess.run([STREETORDER, "evaluate", "--data", str(tmp_path / "d.yaml")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "does not exist" in r.stderr


def test_relative_dataset_path_resolves_against_its_own_folder(tmp_path, monkeypatch):
    """`--data ../shared/.../data.yaml`, as the model card writes it: folders are found beside the file, once."""
    (tmp_path / "set" / "val" / "images").mkdir(parents=True)
    (tmp_path / "set" / "data.yaml").write_text("names: [garbage]\nval: val/images\n")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    dataset = load_data_yaml("../set/data.yaml")
    assert dataset.splits["val"] == [(tmp_path / "set" / "val" / "images").resolve()]

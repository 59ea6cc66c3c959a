"""The variant gate measures accuracy through the serving backends: it refuses an INT8 model quantized badly on
purpose (head quantized, calibrated on blank frames) and accepts the shipped one, on small subsets of its sets."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from pipeline.detect.variants import cpu_capabilities
from pipeline.train.gate import gate_variants
from pipeline.train.gate_sets import GateSets
from pipeline.train.quantize import build_int8, replace_section, variants_markdown

from tests.conftest import REPO

SUBSET = GateSets(limit=12)  # the first 12 images of garbage-cn val, the streets-in holdout, vtest frames


@pytest.mark.skipif("INT8" not in cpu_capabilities(), reason="this CPU has no INT8 path in OpenVINO")
def test_gate_refuses_a_degraded_int8_and_accepts_the_shipped_one(tmp_path):
    good, bad = tmp_path / "good", tmp_path / "bad"
    for folder in (good, bad):
        folder.mkdir()
        shutil.copyfile(REPO / "models" / "street-v2" / "model.onnx", folder / "model.onnx")
    for f in ("model.int8.xml", "model.int8.bin"):
        shutil.copyfile(REPO / "models" / "street-v2" / f, good / f)
    blank = [np.full((480, 640, 3), 114, np.uint8)] * 4  # grey frames: activation ranges learnt from nothing
    build_int8(bad, blank, keep_float="none")

    [refused] = gate_variants(bad, ["openvino-int8"], SUBSET).values()
    assert refused["accepted"] is False and refused["failed"]
    assert refused["checks"]["map50"]["passed"] is False and refused["checks"]["map50"]["drop"] > 0.05

    [accepted] = gate_variants(good, ["openvino-int8"], SUBSET).values()
    assert accepted["accepted"] is True and accepted["failed"] == [], accepted["failed"]
    checks = accepted["checks"]
    assert checks["map50"]["f32"] == refused["checks"]["map50"]["f32"]  # one reference, measured the same way
    assert checks["cue_recall"]["recall"] >= 0.98 and checks["cue_recall"]["images"] == {"streets-in holdout": 12, "vtest frames": 12, "garbage-cn val": 12}
    assert checks["two_wheelers"]["f32"]["labels"] > 0 and checks["two_wheelers"]["passed"]
    assert accepted["sets"]["garbage_cn_val"] == 12 and accepted["sets"]["limit_per_set"] == 12


def test_the_shipped_cards_record_full_set_verdicts():
    """The card's numbers come from the full sets (never a test's subset), and the README shows them."""
    for name, val_images in (("street-v2", 391), ("yolo11n-coco", 0)):  # the COCO model has no garbage classes: no mAP there
        folder = REPO / "models" / name
        card = json.loads((folder / "card.json").read_text())
        rec = card["variants"]
        for v in ("openvino-int8", "openvino-bf16"):
            gate = rec[v]["gate"]
            assert gate["sets"]["limit_per_set"] is None and gate["sets"]["garbage_cn_val"] == val_images
            assert gate["checks"]["cue_recall"]["images"] == {"streets-in holdout": 78, "vtest frames": 40, "garbage-cn val": 391}
            assert gate["accepted"] == (not gate["failed"]) == all(c.get("passed") is not False for c in gate["checks"].values())
        assert card["variants"]["openvino-int8"]["bytes"] < 6_000_000  # committed to the repo: kept small
        assert variants_markdown(card) in (folder / "README.md").read_text()


def test_readme_section_is_replaced_not_repeated():
    card = {"name": "m", "variants": {"timing": {"ms_per_image": {"onnx": 10.0}, "vs_onnx": {"onnx": 1.0}}}}
    once = replace_section("# m\n\ntext\n", variants_markdown(card))
    card["variants"]["timing"]["ms_per_image"]["onnx"] = 9.0
    twice = replace_section(once, variants_markdown(card))
    assert twice.count("## Variants") == 1 and "| 9.0 |" in twice and "| 10.0 |" not in twice and twice.startswith("# m\n\ntext\n")

"""The variant gate measures accuracy through the serving backends: it refuses an INT8 model quantized badly on
purpose (head quantized, calibrated on blank frames) and accepts a good variant (bf16), on small subsets of its sets."""

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
def test_gate_refuses_a_degraded_int8_and_accepts_a_good_variant(tmp_path):
    """street-v2 quantized with its head and calibrated on blank frames is refused; a good variant is accepted:
    bf16 where the CPU has it (one gate run, one f32 reference), else the shipped INT8 (an AVX2-only CPU)."""
    degraded = tmp_path / "street-v2"
    degraded.mkdir()
    for f in ("model.onnx", "card.json"):
        shutil.copyfile(REPO / "models" / "street-v2" / f, degraded / f)
    blank = [np.full((480, 640, 3), 114, np.uint8)] * 4  # grey frames: activation ranges learnt from nothing
    build_int8(degraded, blank, keep_float="none")

    if "BF16" in cpu_capabilities():
        verdicts = gate_variants(degraded, ["openvino-int8", "openvino-bf16"], SUBSET)
        refused, accepted = verdicts["openvino-int8"], verdicts["openvino-bf16"]
    else:
        refused = gate_variants(degraded, ["openvino-int8"], SUBSET)["openvino-int8"]
        accepted = gate_variants(REPO / "models" / "street-v2", ["openvino-int8"], SUBSET)["openvino-int8"]
    assert refused["accepted"] is False and refused["failed"]
    assert refused["checks"]["map50"]["passed"] is False and refused["checks"]["map50"]["drop"] > 0.05

    assert accepted["accepted"] is True and accepted["failed"] == [], accepted["failed"]
    checks = accepted["checks"]
    assert checks["map50"]["f32"] == refused["checks"]["map50"]["f32"] and abs(checks["map50"]["drop"]) <= 0.005
    assert checks["cue_recall"]["recall"] >= 0.98 and checks["cue_recall"]["images"] == {"streets-in holdout": 12, "vtest frames": 12, "garbage-cn val": 12}
    # street-v2's card names a cue model, which serves two-wheelers: recorded, not deciding
    assert checks["two_wheelers"]["f32"]["labels"] > 0 and checks["two_wheelers"]["passed"] is None
    assert accepted["sets"]["garbage_cn_val"] == 12 and accepted["sets"]["limit_per_set"] == 12


def test_the_shipped_cards_record_full_set_verdicts():
    """The card's numbers come from the full sets (never a test's subset), and the README shows them."""
    for name, val_images in (("street-v2", 391), ("yolo11n-coco", 0)):  # the COCO model has no garbage classes: no mAP there
        folder = REPO / "models" / name
        card = json.loads((folder / "card.json").read_text())
        rec = card["variants"]
        for v in ("openvino-int8", "openvino-int8-bf16", "openvino-bf16"):
            gate = rec[v]["gate"]
            assert gate["sets"]["limit_per_set"] is None and gate["sets"]["garbage_cn_val"] == val_images
            assert gate["checks"]["cue_recall"]["images"] == {"streets-in holdout": 78, "vtest frames": 40, "garbage-cn val": 391}
            assert gate["accepted"] == (not gate["failed"]) == all(c.get("passed") is not False for c in gate["checks"].values())
            for again in gate.get("also_on") or []:  # gated again on other CPUs: full sets too
                assert again["sets"]["limit_per_set"] is None and again["checks"]["cue_recall"]["images"] == gate["checks"]["cue_recall"]["images"]
        assert card["variants"]["openvino-int8"]["bytes"] < 6_000_000  # committed to the repo: kept small
        assert variants_markdown(card) in (folder / "README.md").read_text()


def test_readme_section_is_replaced_not_repeated():
    card = {"name": "m", "variants": {"timing": {"ms_per_image": {"onnx": 10.0}, "vs_onnx": {"onnx": 1.0}}}}
    once = replace_section("# m\n\ntext\n", variants_markdown(card))
    card["variants"]["timing"]["ms_per_image"]["onnx"] = 9.0
    twice = replace_section(once, variants_markdown(card))
    assert twice.count("## Variants") == 1 and "| 9.0 |" in twice and "| 10.0 |" not in twice and twice.startswith("# m\n\ntext\n")


def test_timing_only_replaces_the_cards_timing_and_keeps_the_verdicts(tmp_path, capsys):
    """`models quantize NAME --timing-only`: the variants already built are timed again on this machine; the files
    and the gate's verdicts stay, the card says on which CPU and load the new figures were taken."""
    from pipeline.cli import main
    from pipeline.detect.variants import cpu_name

    folder = tmp_path / "street-v2"
    shutil.copytree(REPO / "models" / "street-v2", folder)
    before = json.loads((folder / "card.json").read_text())
    assert main(["models", "quantize", str(folder), "--timing-only", "--json"]) == 0
    after = json.loads((folder / "card.json").read_text())

    timing = after["variants"]["timing"]
    assert timing["cpu"] == cpu_name() and timing["images"] == 10 and timing != before["variants"]["timing"]
    assert {"onnx", "openvino"} <= set(timing["ms_per_image"]) and all(v > 0 for v in timing["ms_per_image"].values())
    assert {k: v for k, v in after["variants"].items() if k != "timing"} == {k: v for k, v in before["variants"].items() if k != "timing"}
    assert {k: v for k, v in after.items() if k != "variants"} == {k: v for k, v in before.items() if k != "variants"}
    assert f"on {cpu_name()}, load average" in (folder / "README.md").read_text()

    (folder / "card.json").write_text(json.dumps({k: v for k, v in before.items() if k != "variants"}))
    capsys.readouterr()
    assert main(["models", "quantize", str(folder), "--timing-only"]) == 2
    assert "no variants in its card yet: run `streetorder models quantize street-v2` first" in capsys.readouterr().err


def test_a_variant_refused_on_any_cpu_it_was_gated_on_is_refused():
    """`verdict`: the build CPU's verdict and each further one's (`also_on`); `unusable` serves none refused anywhere."""
    from pipeline.detect.variants import unusable, verdict

    card = json.loads((REPO / "models" / "street-v2" / "card.json").read_text())
    gate = card["variants"]["openvino-bf16"]["gate"]
    assert verdict(gate) == (True, [])
    gate["also_on"] = [{"cpu": "Xeon A", "accepted": True, "failed": []}, {"cpu": "EPYC B", "accepted": False, "failed": ["cue_recall: 0.97 < 0.98"]}]
    assert verdict(gate) == (False, ["on EPYC B: cue_recall: 0.97 < 0.98"])
    if "BF16" in cpu_capabilities():
        assert unusable(card, REPO / "models" / "street-v2", "openvino-bf16") == "refused by the gate: on EPYC B: cue_recall: 0.97 < 0.98"
    gate["also_on"] = gate["also_on"][:1]
    assert verdict(gate) == (True, [])


@pytest.mark.slow
@pytest.mark.skipif("INT8" not in cpu_capabilities(), reason="this CPU has no INT8 path in OpenVINO")
def test_gate_only_adds_this_cpus_verdicts_and_keeps_the_files_and_the_first_ones(tmp_path, capsys):
    """`models quantize NAME --gate-only`: the files as built are gated again here; each variant this CPU can run
    keeps the build CPU's verdict and lists this CPU's under `also_on` (once, however often it is run), and the
    README says so; a variant it cannot run (bf16 on an AVX2 CPU) is left as it was."""
    from pipeline.cli import main
    from pipeline.detect.variants import VARIANTS, cpu_name

    folder = tmp_path / "street-v2"
    shutil.copytree(REPO / "models" / "street-v2", folder)
    before = json.loads((folder / "card.json").read_text())
    ir = (folder / "model.int8.xml").read_bytes()
    for _ in range(2):
        assert main(["models", "quantize", str(folder), "--gate-only", "--limit", "8"]) == 0
    out = capsys.readouterr().out
    after = json.loads((folder / "card.json").read_text())

    assert (folder / "model.int8.xml").read_bytes() == ir  # nothing rebuilt
    runs_here = [v for v in VARIANTS if not VARIANTS[v].missing()]
    assert "openvino-int8" in runs_here
    for v in set(VARIANTS) - set(runs_here):
        assert after["variants"][v] == before["variants"][v] and f"{v} on {cpu_name()}: " not in out
    for v in runs_here:
        gate, first = after["variants"][v]["gate"], before["variants"][v]["gate"]
        assert {k: x for k, x in gate.items() if k != "also_on"} == {k: x for k, x in first.items() if k != "also_on"}
        others = [x for x in first.get("also_on") or [] if x["cpu"] != cpu_name()]  # other CPUs' records stay as they were
        [here] = [x for x in gate["also_on"] if x["cpu"] == cpu_name()]  # this CPU's, once (replaced if the card had it)
        assert gate["also_on"] == [*others, here]
        assert isinstance(here["accepted"], bool) and here["sets"]["limit_per_set"] == 8
        assert f"{v} on {cpu_name()}: " in out
    assert after["variants"]["timing"] == before["variants"]["timing"]
    readme = (folder / "README.md").read_text()
    assert readme.count("Gated again on other CPUs") == 1 and all(f"{v} on {cpu_name()}: " in readme for v in runs_here)

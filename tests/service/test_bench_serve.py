"""`streetorder bench serve` end to end, at a size that only checks it still runs and reports what it should.

The figures themselves are measured by hand (README); timing asserts in a test would only measure the CI
machine's neighbours. What can rot is the plumbing: the service subprocess, its keys, the metrics it reads, the
load generator's raw HTTP, the pairs and the interleaved phase (one of which once talked to the wrong port).
"""

from __future__ import annotations

import json
import math

import pytest

from pipeline.cli import main
from pipeline.detect.variants import cpu_capabilities
from service import bench as serve_bench

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def test_bench_serve_runs_every_phase_and_prints_its_figures(monkeypatch, capsys):
    monkeypatch.setattr(serve_bench, "REQUESTS", {1: 6, 4: 8, 16: 32})
    monkeypatch.setattr(serve_bench, "INTERLEAVED", 6)
    monkeypatch.setattr(serve_bench, "PAIRS", 1)
    monkeypatch.setattr(serve_bench, "BATCHES", (1, 2))
    assert main(["bench", "serve", "--json", "--images", "16", "--rounds", "1"]) == 0
    out = json.loads(capsys.readouterr().out)

    assert out["images"] == 16 and out["batching"] is True and out["backend"]
    assert {c: (s["requests"], s["errors"]) for c, s in out["serve"].items()} == {"c1": (6, 0), "c4": (8, 0), "c16": (32, 0)}
    assert out["serve"]["c1"]["mean_batch_size"] == 1.0
    assert out["serve"]["c16"]["mean_batch_size"] > 1  # sixteen clients at once were batched
    assert out["c1_interleaved"]["requests"] == 6 and len(out["c16_vs_best_batched_pairs"]) == 1
    assert set(out["detector"]["batched_images_per_s"]) == {"1", "2"}
    for key in ("c16_vs_best_batched", "c16_vs_best_batched_unpaired", "c1_p99_vs_single", "c1_p50_vs_single", "c1_p99_vs_single_p99", "c1_p99_vs_single_unpaired"):
        assert math.isfinite(out[key]) and out[key] > 0, key
    parts = out["c1_mean_ms"]  # the six interleaved requests' time, step by step, from the service's own metrics
    for step in ("client", "in the service", "decode", "prepare", "queue", "model", "boxes", "detector alone"):
        assert math.isfinite(parts[step]) and parts[step] >= 0, step
    assert parts["decode"] > 0 and parts["model"] > 0 and parts["boxes"] > 0
    assert parts["in the service"] > parts["model"]  # a request waits for its inference (the service's time ends a little after its answer: it may pass the client's)
    assert math.isclose(parts["in the service"] + parts["outside the service"], parts["client"], abs_tol=0.02)


def test_bench_first_frames_starts_the_service_with_and_without_the_warm_up(capsys):
    assert main(["bench", "serve", "--first-frames", "--json", "--rounds", "1"]) == 0
    out = json.loads(capsys.readouterr().out)

    off, on = out["warm_up_off"], out["warm_up_on"]
    assert len(off["runs"]) == len(on["runs"]) == 1 and len(out["cameras"]) == 4
    assert off["runs"][0]["warm_up"] is None
    # four cameras, four plans: 16:9 with and without the cue model, 4:3 with it, the square (built at load already)
    assert {k: on["runs"][0]["warm_up"][k] for k in ("plans", "cameras", "left", "failed")} == {"plans": 4, "cameras": 4, "left": 0, "failed": []}
    for mode in (off, on):
        assert set(mode["per_camera"]) == {"vending-1080p", "garbage-720p", "parking-4x3", "garbage-square"}
        assert all(v["first_ms"] > 0 and v["second_ms"] > 0 for v in mode["per_camera"].values())
    assert math.isfinite(out["first_frames_on_vs_off"]) and out["first_frames_on_vs_off"] > 0


@pytest.mark.skipif("INT8" not in cpu_capabilities(), reason="this CPU has no INT8 path in OpenVINO")
def test_the_benchs_detector_serves_each_model_as_the_label_says():
    """'openvino-int8-bf16+cue:openvino-bf16' (or, without bf16, 'openvino-int8+cue:openvino'): the street model
    from its INT8 IR, the cue model from its own folder (it was once loaded by the path of the IR it first got,
    which names no model)."""
    street, cue = ("openvino-int8-bf16", "openvino-bf16") if "BF16" in cpu_capabilities() else ("openvino-int8", "openvino")
    det = serve_bench._same_detector(str(REPO / "models" / "street-v2"), f"{street}+cue:{cue}")
    assert det.primary.backend == street and det.cue.backend == cue
    assert det.cue.path.name == "model.onnx" and det.cue.path.parent.name == "yolo11n-coco"

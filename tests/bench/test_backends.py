"""How `streetorder bench` times backends: as served (each in a run of its own) and image by image."""

from __future__ import annotations

import numpy as np

from pipeline.bench.backends import _figures, _interleaved_ms, _served_ms


class _Recorder:
    """A detector that records which image it got and in what order (times are not what is checked here)."""

    def __init__(self, name: str, calls: list[tuple[str, int]]) -> None:
        self.name, self.calls = name, calls

    def detect(self, images):
        [im] = images
        self.calls.append((self.name, int(im[0, 0])))
        return [None]


def _images(n: int) -> list[np.ndarray]:
    return [np.full((2, 2), i, np.uint8) for i in range(n)]


def test_served_timing_gives_each_backend_runs_of_its_own_opened_by_an_untimed_call():
    calls: list[tuple[str, int]] = []
    dets = {n: _Recorder(n, calls) for n in ("a", "b")}
    med = _served_ms(dets, _images(5), rounds=2, pause_s=0, run=3)
    assert set(med) == {"a", "b"}
    one_round = [("a", 0), ("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 0), ("b", 1), ("b", 2),
                 ("a", 3), ("a", 3), ("a", 4), ("b", 3), ("b", 3), ("b", 4)]
    assert calls == one_round * 2  # runs alternate through every round: drift hits both alike


def test_interleaved_timing_sends_each_image_through_every_backend_before_the_next():
    calls: list[tuple[str, int]] = []
    dets = {n: _Recorder(n, calls) for n in ("a", "b")}
    _interleaved_ms(dets, _images(3), rounds=1, pause_s=0)
    assert calls == [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2), ("b", 2)]


def test_figures_give_the_speed_up_over_torch_only_when_torch_ran():
    med = {"onnx": 20.0, "openvino-bf16": 8.0, "ultralytics": 40.0}
    out = _figures(med)
    assert out["speedup_vs_ultralytics"] == {"onnx": 2.0, "openvino-bf16": 5.0, "ultralytics": 1.0}
    assert out["time_vs_onnx"]["openvino-bf16"] == 0.4
    assert "speedup_vs_ultralytics" not in _figures({"onnx": 20.0, "openvino": 15.0})

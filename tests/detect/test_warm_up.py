"""Warm-up: each camera's input shapes are built when a model loads, so its first frame compiles nothing."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.config import ConfigSource, parse_config
from pipeline.detect import DetectorSettings
from pipeline.detect.cascade import load_cue_cascade
from pipeline.detect.letterbox import input_shape
from pipeline.detect.plan import camera_detector
from pipeline.detect.warm_up import warm_up

CONFIG = """
cameras:
  - id: lane-16x9
    location: {district: 西湖区, point: P1}
    resolution: [1920, 1080]
    zones: [{id: lane, kind: garbage_watch, polygon: [[0, 600], [1920, 600], [1920, 1080], [0, 1080]]}]
  - id: lane-16x9-b
    location: {district: 西湖区, point: P2}
    resolution: [1920, 1080]
    zones: [{id: lane, kind: garbage_watch, polygon: [[0, 600], [1920, 600], [1920, 1080], [0, 1080]]}]
  - id: stalls-4x3
    location: {district: 西湖区, point: P3}
    resolution: [768, 576]
    zones: [{id: walk, kind: no_vending, polygon: [[0, 300], [768, 300], [768, 576], [0, 576]]}]
  - id: heap-sliced
    location: {district: 西湖区, point: P4}
    resolution: [1280, 1024]
    zones: [{id: heap, kind: no_parking, polygon: [[100, 300], [900, 300], [900, 700], [100, 700]], slicing: {tiles: 3x2}}]
"""


@pytest.fixture(scope="module")
def cascade():
    """street-v2 with its cue model on OpenVINO f32 (every CPU has it), as loaded: the squares compiled only."""
    return load_cue_cascade("street-v2", backend="openvino", settings=DetectorSettings(conf=0.25))


def compiled(cascade) -> dict[str, set[tuple[int, int]]]:
    return {"street": set(cascade.primary._compiled), "cue": set(cascade.cue._compiled)}


def test_each_cameras_first_frame_compiles_nothing_after_warm_up(cascade):
    cameras = parse_config(CONFIG, "cams.yaml").cameras
    assert compiled(cascade) == {"street": {(416, 416)}, "cue": {(640, 640)}}

    done = warm_up(cascade, cameras)

    # the two 1080p cameras share a plan; the garbage-only ones do not run the cue model
    assert (done.plans, done.cameras, done.left, done.failed) == (3, 4, 0, ())
    shapes = compiled(cascade)
    assert {input_shape(1080, 1920, 416, True), input_shape(576, 768, 416, True), input_shape(1024, 1280, 416, True)} <= shapes["street"]
    assert input_shape(576, 768, 640, True) in shapes["cue"] and input_shape(1024, 1280, 640, True) in shapes["cue"]
    assert input_shape(1080, 1920, 640, True) not in shapes["cue"]  # 16:9 is only a garbage camera's
    sliced = camera_detector(cascade, cameras[3], 1280, 1024).cue  # the cue model owns the bikes: it runs on tiles
    tiles = {input_shape(round(y2 - y1), round(x2 - x1), 640, True) for x1, y1, x2, y2 in sliced.tiles(1280, 1024)}
    assert len(tiles) >= 1 and tiles <= shapes["cue"]

    assert len(cameras) == 4
    for camera in cameras:  # what a camera's first frame runs: nothing left to compile
        width, height = camera.resolution
        frame = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
        camera_detector(cascade, camera, width, height).detect([frame])
        assert compiled(cascade) == shapes, camera.id


def test_budget_leaves_the_rest_for_their_first_frame():
    cascade = load_cue_cascade("street-v2", backend="openvino", settings=DetectorSettings(conf=0.25))
    cameras = parse_config(CONFIG, "cams.yaml").cameras
    done = warm_up(cascade, cameras, budget_s=0)
    assert (done.plans, done.left) == (0, 4)
    assert compiled(cascade) == {"street": {(416, 416)}, "cue": {(640, 640)}}


def test_a_camera_whose_shape_fails_is_reported_and_the_others_are_warmed(cascade, caplog):
    cameras = parse_config(CONFIG, "cams.yaml").cameras

    class Refuses:
        """A runtime that cannot build one shape (a broken model, a full disk for a compile cache)."""

        names = cascade.primary.names

        def warm(self, sizes):
            if (1080, 1920) in sizes:
                raise RuntimeError("cannot compile 256x416")
            self.warmed = sizes

    refuses = Refuses()
    done = warm_up(refuses, cameras[:3])
    assert done.failed == ("lane-16x9",) and refuses.warmed == [(576, 768)]
    assert "warm-up of camera lane-16x9 (1920x1080) failed: RuntimeError: cannot compile 256x416" in caplog.text


def test_service_warm_up_reads_the_config_and_can_be_switched_off(tmp_path):
    from service.runtime.detector import camera_warm_up
    from service.settings import ServiceSettings

    path = tmp_path / "cams.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    assert camera_warm_up(ServiceSettings(camera_config=path, warm_up_s=0), ConfigSource(path)) is None
    warm = camera_warm_up(ServiceSettings(camera_config=path), ConfigSource(path))
    street = load_cue_cascade("street-v2", backend="openvino", settings=DetectorSettings(conf=0.25)).primary
    warm(street)
    assert input_shape(1080, 1920, 416, True) in street._compiled

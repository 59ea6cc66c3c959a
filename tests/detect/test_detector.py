"""The backends agree on real images, and the ONNX path matches ultralytics' preprocessing exactly."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.detect import DetectorSettings, load_detector, registry, resolve_model
from pipeline.detect.exported import read_onnx_metadata
from pipeline.detect.letterbox import input_shape, letterbox
from pipeline.detect.streams import MAX_AUTO_STREAMS, available_cores
from pipeline.detect.variants import box_agreement
from pipeline.train.gate import MIN_CUE_RECALL
from pipeline.source.images import load_image
from pipeline.geometry import box_iou

from tests.conftest import REPO, STREETS_IN, val_images

REAL_IMAGES = val_images(24) + sorted((STREETS_IN / "images").glob("*.jpg"))[::40]


@pytest.mark.parametrize("rect", [False, True])
@pytest.mark.parametrize("shape", [(640, 640), (576, 768), (1080, 1920), (333, 500), (41, 977)])
def test_letterbox_matches_ultralytics(shape, rect):
    from ultralytics.data.augment import LetterBox

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, size=(*shape, 3), dtype=np.uint8)
    ours, box = letterbox(image, 320, rect=rect)
    theirs = LetterBox((320, 320), auto=rect, stride=32)(image=image)
    assert ours.shape == theirs.shape == (*input_shape(*shape, 320, rect), 3)
    assert rect or ours.shape == (320, 320, 3)
    assert np.array_equal(ours, theirs)
    corners = np.array([[0, 0, shape[1], shape[0]]], dtype=np.float32)
    to_input = corners * box.ratio + [box.pad_left, box.pad_top, box.pad_left, box.pad_top]
    assert np.allclose(box.boxes_to_source(to_input, shape[1], shape[0]), corners, atol=1e-3)


def assert_parity(onnx_dets, ultra_dets, min_score=0.3):
    """Every confident box of one backend has a partner in the other: IoU >= 0.9, same class, |Δscore| <= 0.02.

    Boxes near the threshold may fall on either side of it in one backend, so partners are searched among all
    boxes down to `min_score - 0.05`.
    """
    matched = 0
    for a_all, b_all in ((onnx_dets, ultra_dets), (ultra_dets, onnx_dets)):
        assert len(a_all) == len(b_all) > 0
        for a, b in zip(a_all, b_all):
            a = a[a.confidence >= min_score]
            b = b[b.confidence >= min_score - 0.05]
            if len(a) == 0:
                continue
            assert len(b) > 0, f"{len(a)} boxes without partner"
            iou = box_iou(a.xyxy, b.xyxy)
            for i in range(len(a)):
                same = np.where(b.class_id == a.class_id[i])[0]
                assert len(same), f"class {a.data['class_name'][i]} missing in the other backend"
                j = same[iou[i, same].argmax()]
                assert iou[i, j] >= 0.9, iou[i, j]
                assert abs(float(a.confidence[i]) - float(b.confidence[j])) <= 0.02
                matched += 1
    return matched


def _both(model, imgsz=None, other="ultralytics"):
    settings = DetectorSettings(conf=0.2, imgsz=imgsz)
    images = [load_image(p) for p in REAL_IMAGES]
    return load_detector(model, "onnx", settings).detect(images), load_detector(model, other, settings).detect(images)


@pytest.mark.slow
def test_parity_coco_model(coco_onnx):
    onnx_dets, ultra_dets = _both(coco_onnx)
    assert assert_parity(onnx_dets, ultra_dets) > 30


@pytest.mark.slow
def test_parity_shipped_model():
    ref = resolve_model()
    assert ref.onnx and ref.pt, "the current model must ship both model.onnx and model.pt"
    onnx_dets, ultra_dets = _both(ref.name)
    assert assert_parity(onnx_dets, ultra_dets) > 30


@pytest.mark.slow
def test_parity_openvino_coco_model(coco_onnx):
    onnx_dets, ov_dets = _both(coco_onnx, other="openvino")
    assert assert_parity(onnx_dets, ov_dets) > 30


@pytest.mark.slow
def test_parity_openvino_shipped_model():
    onnx_dets, ov_dets = _both(resolve_model().name, other="openvino")
    assert assert_parity(onnx_dets, ov_dets) > 30


@pytest.mark.slow
def test_auto_backend_picks_a_passing_backend_once(monkeypatch):
    monkeypatch.setattr(registry, "_AUTO", {})
    settings = DetectorSettings(conf=0.2)
    det = load_detector(None, "auto", settings, threads=1)
    assert det.backend in registry.BACKENDS and det.auto_choice.backend == det.backend
    assert det.auto_choice.reason and {"onnx", "openvino"} <= set(det.auto_choice.ms)  # both probed, so both passed (and the accepted variants)
    images = [load_image(p) for p in REAL_IMAGES[:8]]
    # auto may serve a variant the gate accepted: its boxes match f32's, its scores need not
    agree = box_agreement(load_detector(None, "onnx", settings, threads=1).detect(images), det.detect(images))
    assert agree["boxes"] > 5 and min(agree["recall"], agree["precision"]) >= MIN_CUE_RECALL, agree
    again = load_detector(None, "auto", settings, threads=1)
    assert again.auto_choice is det.auto_choice and len(registry._AUTO) == 1  # probed once per model file and threads


def test_auto_backend_falls_back_to_onnx(monkeypatch, coco_onnx):
    monkeypatch.setattr(registry, "_AUTO", {})
    monkeypatch.setitem(__import__("sys").modules, "pipeline.detect.openvino", None)  # as if openvino were missing
    det = load_detector(coco_onnx, "auto", DetectorSettings(conf=0.25))
    assert det.backend == "onnx" and "openvino unavailable" in det.auto_choice.reason
    assert len(det.detect([load_image(REAL_IMAGES[0])])) > 0


def test_auto_backend_keeps_onnx_when_parity_fails(monkeypatch, coco_onnx, caplog):
    monkeypatch.setattr(registry, "_AUTO", {})
    monkeypatch.setattr(registry, "parity_problems", lambda a, b: (["score differs by 0.050 > 0.02"], 0))
    det = load_detector(coco_onnx, "auto", DetectorSettings(conf=0.25))
    assert det.backend == "onnx" and "disagrees" in det.auto_choice.reason
    assert "backend auto" in caplog.text


@pytest.mark.parametrize("backend", ["auto", "onnx", "openvino"])
def test_missing_model_file_is_a_clear_error(tmp_path, backend):
    with pytest.raises(FileNotFoundError, match="model file not found"):
        load_detector(tmp_path / "nope.onnx", backend)
    from pipeline.detect.openvino import OpenVinoDetector

    with pytest.raises(FileNotFoundError, match="ONNX model not found"):
        OpenVinoDetector(tmp_path / "nope.onnx")
    with pytest.raises(ValueError, match="unknown backend 'tensorrt'"):
        load_detector(None, "tensorrt")


def test_onnx_metadata_without_onnx(coco_onnx, tmp_path):
    import onnxruntime as ort

    for path in (coco_onnx, resolve_model().onnx):
        meta = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
        assert read_onnx_metadata(path) == meta and "names" in meta
    (tmp_path / "junk.onnx").write_bytes(b"\xff" * 64)
    assert read_onnx_metadata(tmp_path / "junk.onnx") == {}


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_each_image_gets_its_own_rectangle_in_a_mixed_batch(coco_onnx, backend):
    """A wide frame is letterboxed to the smallest stride rectangle (a 1080p frame at 320 px: 320x192, not 320x320),
    and a batch of several shapes gives each image what it gets alone (the batch is split by shape; OpenVINO
    compiles a model per shape)."""
    det = load_detector(coco_onnx, backend, DetectorSettings(conf=0.25, imgsz=320))
    street = load_image(REAL_IMAGES[-1])
    wide = cv2.resize(street, (1920, 1080))
    tall = cv2.resize(street, (480, 800))
    assert det.prepare(wide).tensor.shape == (3, 192, 320) and det.prepare(tall).tensor.shape == (3, 320, 192)
    square = det.with_settings(DetectorSettings(conf=0.25, imgsz=320, rect=False))
    assert square.prepare(wide).tensor.shape == (3, 320, 320)
    images = [wide, tall, street, wide]
    batched = det.detect(images)
    assert sum(len(d) for d in batched) > 0
    for image, b in zip(images, batched):
        [alone] = det.detect([image])
        assert np.array_equal(alone.class_id, b.class_id) and np.allclose(alone.xyxy, b.xyxy, atol=0.05)
    # the rectangle finds what the square finds (the same objects, a few pixels apart)
    [r], [q] = det.detect([wide]), square.detect([wide])
    assert box_agreement([q], [r])["recall"] >= 0.9


@pytest.mark.slow
def test_batched_equals_single(coco_onnx):
    det = load_detector(coco_onnx, "onnx", DetectorSettings(conf=0.25))
    images = [load_image(p) for p in REAL_IMAGES[:5]]
    batched = det.detect(images)
    assert len(batched) == len(images) == 5
    for image, b in zip(images, batched):
        [s] = det.detect([image])
        assert np.allclose(s.xyxy, b.xyxy, atol=0.05) and np.array_equal(s.class_id, b.class_id)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_input_buffers_are_reused_only_once_their_image_is_done(coco_onnx, backend):
    det = load_detector(coco_onnx, backend, DetectorSettings(conf=0.25))
    a_img, b_img = (load_image(p) for p in REAL_IMAGES[:2])
    a = det.prepare(a_img)
    a_values = a.tensor.copy()
    b = det.prepare(b_img)  # `a` is alive: never the same buffer
    assert not np.shares_memory(a.tensor, b.tensor) and np.array_equal(a.tensor, a_values)
    first = a.tensor.__array_interface__["data"][0]
    del a  # done with: its buffer serves the next image
    c = det.prepare(a_img)
    assert c.tensor.__array_interface__["data"][0] == first and np.array_equal(c.tensor, a_values)
    [whole] = det.detect([a_img])
    [piece] = [det.finish(r, c) for r in det.infer_prepared([c])]
    assert np.array_equal(whole.xyxy, piece.xyxy) and np.array_equal(whole.class_id, piece.class_id)


@pytest.mark.slow
def test_class_filter_and_unknown_class(coco_onnx):
    images = [load_image(p) for p in REAL_IMAGES[:8]]
    only = load_detector(coco_onnx, "onnx", DetectorSettings(conf=0.25, classes=("person",))).detect(images)
    every = load_detector(coco_onnx, "onnx", DetectorSettings(conf=0.25)).detect(images)
    assert sum(len(d) for d in only) > 0
    for o, e in zip(only, every):
        assert set(o.data["class_name"]) <= {"person"}
        assert len(o) == int((e.data["class_name"] == "person").sum())
    with pytest.raises(ValueError, match="unknown class"):
        load_detector(coco_onnx, "onnx", DetectorSettings(classes=("unicorn",)))


def test_boxes_in_source_pixels(coco_onnx):
    det = load_detector(coco_onnx, "onnx", DetectorSettings(conf=0.25))
    image = load_image(REAL_IMAGES[0])
    big = np.ascontiguousarray(np.repeat(np.repeat(image, 2, axis=0), 2, axis=1))  # same scene at twice the size
    [small_d], [big_d] = det.detect([image]), det.detect([big])
    assert len(small_d) and len(small_d) == len(big_d)
    assert np.allclose(big_d.xyxy, small_d.xyxy * 2, atol=4)
    assert (big_d.xyxy[:, 2] <= big.shape[1]).all() and (big_d.xyxy[:, 3] <= big.shape[0]).all()


def test_settings_validation():
    with pytest.raises(ValueError):
        DetectorSettings(conf=1.5)
    with pytest.raises(ValueError):
        DetectorSettings(imgsz=333)


def test_openvino_gives_each_detector_stream_a_runtime_stream_of_its_own():
    """A detector loaded with fewer threads than cores is called by that many streams at once (`detect.streams`):
    OpenVINO needs as many streams in the compiled model, unpinned, or it runs the calls one after the other. The
    speed of it is `streetorder bench batch`'s to show; here the properties, and two threads' boxes."""
    import threading

    from pipeline.detect.openvino import runtime_streams

    assert runtime_streams(None, 2) == {}
    assert runtime_streams(2, 2) == {"INFERENCE_NUM_THREADS": 2}
    assert runtime_streams(1, 2) == {"INFERENCE_NUM_THREADS": 2, "NUM_STREAMS": 2, "ENABLE_CPU_PINNING": False}
    assert runtime_streams(2, 8) == {"INFERENCE_NUM_THREADS": 8, "NUM_STREAMS": 4, "ENABLE_CPU_PINNING": False}
    assert runtime_streams(3, 2) == {"INFERENCE_NUM_THREADS": 3}  # more threads than cores: one stream, as asked
    assert runtime_streams(1, 64)["NUM_STREAMS"] == 4  # at most as many as auto runs: each holds its own buffers

    det = load_detector(str(REPO / "models" / "street-v2"), backend="openvino", settings=DetectorSettings(conf=0.25), threads=1)
    images = [load_image(p) for p in val_images(4)]
    alone = [det.detect([im])[0] for im in images]
    compiled = next(iter(det._compiled.values()))
    streams = max(1, min(available_cores(), MAX_AUTO_STREAMS))  # one thread each, on this machine's cores
    assert int(compiled.get_property("NUM_STREAMS")) == streams and int(compiled.get_property("INFERENCE_NUM_THREADS")) == streams
    together: dict[int, list] = {}

    def run(k: int) -> None:
        together[k] = [det.detect([im])[0] for im in images]

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(len(d) for d in alone) > 0
    for k in range(2):
        assert len(together[k]) == len(alone) == 4
        for a, b in zip(alone, together[k]):
            assert np.array_equal(a.class_id, b.class_id) and np.allclose(a.xyxy, b.xyxy, atol=0.5)

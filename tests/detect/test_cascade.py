"""The street model + cue model cascade, and the cue-class evaluation, on real images and the shipped models."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.config.models import RulesConfig
from pipeline.detect import DetectorSettings, load_detector
from pipeline.detect.cascade import CueCascade, load_cue_cascade, needs_cues
from pipeline.source.images import load_image
from pipeline.train.cue_eval import CUE_CLASSES, CueImage, evaluate_cues, rule_scores

from tests.conftest import STREETS_IN, val_images

STREET = ("garbage", "garbage_bin", "overflow")
BIKES = STREETS_IN / "images" / "IMG20240615122032_jpg.jpg"  # a pavement with parked motorbikes


@pytest.fixture(scope="module")
def street():
    return load_detector("street-v1", backend="onnx", settings=DetectorSettings(conf=0.25))


@pytest.fixture(scope="module")
def coco():
    return load_detector("yolo11n-coco", backend="onnx", settings=DetectorSettings(conf=0.25))


def test_cue_classes_come_from_the_cue_model_and_street_classes_from_the_street_model(street, coco):
    cascade = CueCascade(street, coco, STREET)
    assert cascade.names == street.names
    assert set(cascade.cue_classes) == set(street.names) - set(STREET)
    images = [load_image(BIKES), load_image(val_images(1)[0])]
    for image, merged, own, cue in zip(images, cascade.detect(images), street.detect(images), coco.detect(images)):
        names = merged.data["class_name"]
        # every street-class box is the street model's, every cue box is the COCO model's, renumbered
        assert np.array_equal(np.sort(merged.confidence[np.isin(names, STREET)]), np.sort(own.confidence[np.isin(own.data["class_name"], STREET)]))
        want = cue[np.isin(cue.data["class_name"], cascade.cue_classes)]
        assert np.array_equal(np.sort(merged.confidence[~np.isin(names, STREET)]), np.sort(want.confidence))
        assert all(street.names[i] == n for i, n in zip(merged.class_id, names))
        assert np.all(np.diff(merged.confidence) <= 0)
    assert (cascade.detect([images[0]])[0].data["class_name"] == "motorcycle").sum() >= 2


def test_the_services_split_of_the_work_gives_what_detect_gives(street, coco):
    """The micro-batcher prepares on request threads, runs only the models on its worker, and finishes on
    request threads again: the pieces, put together in that order, answer as `detect` does."""
    cascade = CueCascade(street, coco, STREET)
    images = [load_image(BIKES), load_image(val_images(1)[0])]
    prepared = [cascade.prepare(im) for im in images]
    raw = cascade.infer_prepared(prepared)
    assert len(raw) == len(prepared) == 2
    for whole, piece in zip(cascade.detect(images), [cascade.finish(r, p) for r, p in zip(raw, prepared)]):
        assert len(whole) > 0
        assert list(whole.data["class_name"]) == list(piece.data["class_name"])
        assert np.array_equal(whole.xyxy, piece.xyxy) and np.array_equal(whole.confidence, piece.confidence)
    assert prepared[0].nbytes == prepared[0].primary.tensor.nbytes + prepared[0].cue.tensor.nbytes


def test_a_spare_thread_prepares_the_cue_models_input_to_the_same_answer(street, coco):
    """With `spare` (what an idle service passes), the cue model's input is made on another thread while this
    one makes the street model's: the same inputs, the same boxes."""
    from concurrent.futures import ThreadPoolExecutor

    cascade = CueCascade(street, coco, STREET)
    image = load_image(BIKES)
    alone = cascade.prepare(image)
    with ThreadPoolExecutor(1, thread_name_prefix="spare") as spare:
        side = cascade.prepare(image, spare=spare)
        assert np.array_equal(alone.primary.tensor, side.primary.tensor) and np.array_equal(alone.cue.tensor, side.cue.tensor)
    [raw] = cascade.infer_prepared([side])
    whole, split = cascade.finish(raw, alone), cascade.finish(raw, side)
    assert len(whole) > 0 and list(whole.data["class_name"]) == list(split.data["class_name"])
    assert np.array_equal(whole.xyxy, split.xyxy) and np.array_equal(whole.confidence, split.confidence)


def test_a_failure_on_the_spare_thread_reaches_the_caller(street, coco, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    def broken(image):
        raise RuntimeError("no cue input")

    cascade = CueCascade(street, coco, STREET)
    monkeypatch.setattr(coco, "prepare", broken)
    with ThreadPoolExecutor(1) as spare, pytest.raises(RuntimeError, match="no cue input"):
        cascade.prepare(load_image(BIKES), spare=spare)


@pytest.mark.slow
def test_a_class_filter_applies_to_both_models(street, coco):
    only = CueCascade(load_detector("street-v1", settings=DetectorSettings(conf=0.25, classes=("garbage", "motorcycle"))), coco, STREET, keep=("garbage", "motorcycle"))
    [d] = only.detect([load_image(BIKES)])
    assert set(d.data["class_name"]) <= {"garbage", "motorcycle"} and "motorcycle" in set(d.data["class_name"])
    none = CueCascade(load_detector("street-v1", settings=DetectorSettings(conf=0.25, classes=("garbage",))), coco, STREET, keep=("garbage",))
    assert none.cue_classes == () and set(none.detect([load_image(BIKES)])[0].data["class_name"]) <= {"garbage"}


def test_the_cascade_loads_from_a_model_card(tmp_path):
    import json
    import shutil

    from pipeline.paths import MODELS_DIR as REPO_MODELS

    folder = tmp_path / "street-x"
    folder.mkdir()
    shutil.copy(REPO_MODELS / "street-v1" / "model.onnx", folder / "model.onnx")
    card = {"name": "street-x", "street_classes": list(STREET), "cue_model": {"name": "yolo11n-coco", "imgsz": 640}}
    (folder / "card.json").write_text(json.dumps(card))
    det = load_cue_cascade(folder, settings=DetectorSettings(conf=0.3))
    assert isinstance(det, CueCascade) and det.cue.imgsz == 640
    (folder / "card.json").write_text(json.dumps({k: v for k, v in card.items() if k != "cue_model"}))
    assert not isinstance(load_cue_cascade(folder), CueCascade)


def test_unrelated_models_are_refused(street):
    class Other:
        names = ("cat", "dog")

        def detect(self, images):
            return []

    with pytest.raises(ValueError, match="shares no class"):
        CueCascade(street, Other(), STREET)


def test_only_vending_and_parking_zones_need_cues():
    assert needs_cues(["garbage_watch", "no_vending"]) and needs_cues(["parking_bay"]) and needs_cues(["no_parking"])
    assert not needs_cues(["garbage_watch", "ignore"]) and not needs_cues([])


def test_rule_scores_follow_the_rules_config():
    scores = rule_scores()
    assert set(scores) == set(CUE_CLASSES)
    assert scores["bicycle"] == RulesConfig().non_motor_parking.min_score
    assert scores["umbrella"] == scores["person"] == RulesConfig().street_vending.min_score
    lowered = RulesConfig.model_validate({"street_vending": {"min_score": 0.2}})
    assert rule_scores(lowered)["chair"] == 0.2


@pytest.mark.slow
def test_the_reference_scores_full_recall_against_itself_and_an_empty_detector_none(coco):
    images = [CueImage("streets", BIKES.name, load_image(BIKES), np.array([[0, 0, 10, 10]], float))] + [
        CueImage("gcn", p.name, load_image(p), None) for p in val_images(3)
    ]
    low = load_detector("yolo11n-coco", settings=DetectorSettings(conf=0.001))
    reference = load_detector("yolo11n-coco", settings=DetectorSettings(conf=0.4))

    class Blind:
        names = low.names

        def detect(self, images):
            return [low.detect([im])[0][:0] for im in images]

    report = evaluate_cues({"self": low, "blind": Blind()}, reference, images)
    assert report["images"] == {"streets": 1, "gcn": 3}
    assert report["detectors"]["self"]["recall"] == 1.0
    assert report["detectors"]["blind"]["recall"] == 0.0
    assert report["detectors"]["self"]["per_class"]["motorcycle"]["reference_boxes"] >= 1

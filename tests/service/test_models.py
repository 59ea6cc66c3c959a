"""Model listing and hot swap: the new model loads fully before it serves; a broken one leaves the old serving."""

from __future__ import annotations

import os
import shutil

import pytest

from .conftest import T0, post_frame


def detect(client, jpeg):
    return client.post("/detect", files={"image": ("s.jpg", jpeg, "image/jpeg")})


def test_list_and_current(client):
    listed = client.get("/models").json()
    assert listed["current_file"] == "coco"
    by_name = {m["name"]: m for m in listed["models"]}
    assert set(by_name) == {"coco", "coco-b", "broken", "no-onnx"}
    assert by_name["coco"]["current"] and by_name["coco"]["map50"] == 0.1 and by_name["coco"]["architecture"] == "YOLO11n"
    assert not by_name["no-onnx"]["servable"] and by_name["broken"]["servable"]
    current = client.get("/models/current").json()
    assert current["name"] == "coco" and current["imgsz"] == 640 and "motorcycle" in current["classes"]
    assert current["rule_classes_missing"] == ["cart", "garbage", "garbage_bin", "goods", "overflow", "stall", "tricycle"]  # COCO cannot see these


def test_the_model_list_pages_like_every_list(client):
    first = client.get("/models", params={"limit": 3}).json()
    assert first["total"] == 4 and first["offset"] == 0 and len(first["models"]) == 3 and first["next"]
    rest = client.get(first["next"]).json()
    assert len(rest["models"]) == 1 and rest["next"] is None and rest["offset"] == 3
    assert {m["name"] for m in first["models"] + rest["models"]} == {"coco", "coco-b", "broken", "no-onnx"}


@pytest.mark.slow
def test_swap_serves_the_new_model_for_the_next_request(client, street_jpeg, models_root):
    r = client.put("/models/current", json={"name": "coco-b"})
    assert r.status_code == 200 and r.json()["name"] == "coco-b"
    assert r.json()["path"] == str(models_root / "coco-b" / "model.onnx")
    assert detect(client, street_jpeg).json()["model"] == "coco-b"
    assert post_frame(client, street_jpeg, T0).json()["model"] == "coco-b"  # the engine uses it too
    assert {m["name"] for m in client.get("/models").json()["models"] if m["current"]} == {"coco-b"}
    assert (models_root / "CURRENT").read_text().strip() == "coco"  # not persisted unless asked


def test_failed_swaps_keep_the_old_model_serving(client, street_jpeg):
    broken = client.put("/models/current", json={"name": "broken"})
    assert broken.status_code == 422 and "failed to load" in broken.json()["detail"]
    for name, code in (("missing", 404), ("no-onnx", 404), ("../coco", 404), ("coco/model.onnx", 404)):
        assert client.put("/models/current", json={"name": name}).status_code == code, name
    assert client.put("/models/current", json={}).status_code == 422
    assert client.get("/models/current").json()["name"] == "coco"
    r = detect(client, street_jpeg)
    assert r.status_code == 200 and r.json()["model"] == "coco"
    assert client.get("/ready").json()["ready"] is True


@pytest.mark.slow
def test_persisting_the_choice_rewrites_current_in_the_models_dir(make_client, models_root, tmp_path):
    own = tmp_path / "models"
    for name in ("coco", "coco-b"):
        (own / name).mkdir(parents=True)
        os.symlink(models_root / name / "model.onnx", own / name / "model.onnx")
    (own / "CURRENT").write_text("coco\n")
    client = make_client(models_dir=own, persist_model=True)
    assert client.put("/models/current", json={"name": "coco-b"}).status_code == 200
    assert (own / "CURRENT").read_text() == "coco-b\n"
    assert client.put("/models/current", json={"name": "nope"}).status_code == 404
    assert (own / "CURRENT").read_text() == "coco-b\n"
    shutil.rmtree(own)


def test_a_swap_fixes_a_service_that_started_without_a_model(make_client, street_jpeg):
    client = make_client(model="broken")
    assert client.get("/ready").status_code == 503
    assert detect(client, street_jpeg).status_code == 503
    assert client.put("/models/current", json={"name": "coco"}).status_code == 200
    assert client.get("/ready").status_code == 200
    assert detect(client, street_jpeg).status_code == 200


def test_a_model_is_warmed_before_it_serves(models_root, make_client):
    """`ModelSlot.warm` runs on each loaded detector while the old one still serves (a swap's compiles never
    hold a frame); the service hands it the camera config, unless `warm_up_s` is 0."""
    from pipeline.detect import DetectorSettings
    from service.runtime.model_slot import ModelSlot

    seen = []
    slot = ModelSlot(models_root, DetectorSettings(), threads=1, warm=lambda det: seen.append((det, slot.current.name if slot.current else None)))
    slot.start("coco")
    slot.swap("coco-b")
    assert [serving for _, serving in seen] == [None, "coco"]
    assert seen[1][0] is slot.current.detector

    warmed = make_client().get("/models/current").json()["warm_up"]  # cam-1 and cam-2: one plan, one frame size
    assert {k: warmed[k] for k in ("plans", "cameras", "left", "failed")} == {"plans": 1, "cameras": 2, "left": 0, "failed": []}
    assert make_client(warm_up_s=0).get("/models/current").json()["warm_up"] is None

"""The running service follows models/CURRENT: `streetorder promote` and `rollback` need no restart."""

from __future__ import annotations

import shutil
import time

import pytest

from pipeline.train.promote import record_promotion, rollback


def _serving(client) -> str:
    return client.get("/models/current").json()["name"]


def _wait(client, name: str, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while _serving(client) != name:
        assert time.monotonic() < end, f"service still serves {_serving(client)}, not {name}"
        time.sleep(0.05)


@pytest.mark.slow
def test_promote_and_rollback_reach_a_running_service(tmp_path, models_root, make_client, monkeypatch, caplog):
    models = tmp_path / "models"
    for name in ("coco", "coco-b", "broken"):
        shutil.copytree(models_root / name, models / name)
    (models / "CURRENT").write_text("coco\n")
    monkeypatch.setenv("STREETORDER_MODELS", str(models))
    client = make_client(models_dir=models, model_watch_s=0.05)
    assert _serving(client) == "coco"
    record_promotion("coco-b", {"promote": True, "checks": []}, models)
    _wait(client, "coco-b")
    rollback(models)
    _wait(client, "coco")
    (models / "CURRENT").write_text("broken\n")  # a pointer to a model that does not load: the old one keeps serving
    refused = "models/CURRENT names 'broken', which did not load"
    end = time.monotonic() + 120
    while not any(refused in r.getMessage() for r in caplog.records):  # the watcher saw the change and refused it
        assert time.monotonic() < end, "the watcher never tried the broken model"
        time.sleep(0.05)
    assert _serving(client) == "coco"
    assert client.post("/detect", files={"image": ("s.jpg", _jpeg(), "image/jpeg")}).status_code == 200


def _jpeg() -> bytes:
    import cv2
    import numpy as np

    return cv2.imencode(".jpg", np.full((64, 64, 3), 120, np.uint8))[1].tobytes()

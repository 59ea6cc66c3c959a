"""POST /detect: the detector alone, with per-request score and class filters."""

from __future__ import annotations

import pytest

from service.http.keys import Role

from .conftest import MOTO, key_of, without_key


def detect(client, jpeg, **params):
    return client.post("/detect", params=params, files={"image": ("street.jpg", jpeg, "image/jpeg")})


def test_detections_of_a_real_street_photo(client, street_jpeg):
    r = detect(client, street_jpeg)
    assert r.status_code == 200
    body = r.json()
    assert (body["model"], body["width"], body["height"]) == ("coco", 640, 640)
    motos = [d for d in body["detections"] if d["class_name"] == "motorcycle"]
    assert len(motos) >= 4 and all(d["class_id"] == 3 for d in motos)
    best = max(motos, key=lambda d: d["score"])
    assert best["box"] == pytest.approx(list(MOTO), abs=0.2)
    assert all(d["track_id"] is None for d in body["detections"])


def test_score_and_class_filters(client, street_jpeg):
    all_ = detect(client, street_jpeg).json()["detections"]
    high = detect(client, street_jpeg, conf=0.6).json()["detections"]
    assert high and len(high) < len(all_) and all(d["score"] >= 0.6 for d in high)
    only = detect(client, street_jpeg, classes="truck,car").json()["detections"]
    assert only and {d["class_name"] for d in only} <= {"truck", "car"}
    repeated = client.post("/detect?classes=truck&classes=car", files={"image": ("s.jpg", street_jpeg, "image/jpeg")}).json()["detections"]
    assert repeated == only


def test_filter_errors(client, street_jpeg):
    below = detect(client, street_jpeg, conf=0.1)
    assert below.status_code == 422 and "floor 0.25" in below.json()["detail"]
    unknown = detect(client, street_jpeg, classes="garbage")
    assert unknown.status_code == 422 and "unknown class(es) ['garbage']" in unknown.json()["detail"]
    assert detect(client, street_jpeg, conf=2).status_code == 422
    assert client.post("/detect").status_code == 415
    assert client.post("/detect", files={"other": ("s.jpg", street_jpeg, "image/jpeg")}).status_code == 422


def test_detect_needs_a_camera_or_admin_key(client, street_jpeg):
    files = {"image": ("s.jpg", street_jpeg, "image/jpeg")}
    with without_key(client):
        assert client.post("/detect", files=files).status_code == 401
        assert client.post("/detect", headers={"X-API-Key": "so_wrong"}, files=files).status_code == 401
        assert client.post("/detect", headers=key_of(client, Role.REVIEWER), files=files).status_code == 403
        assert client.post("/detect", headers=key_of(client, Role.CAMERA), files=files).status_code == 200
        assert client.get("/health").status_code == 200 and client.get("/ready").status_code == 200  # probes stay open


def test_where_an_upload_is_decoded(client, street_jpeg, monkeypatch):
    """A small upload on an idle service is decoded on the event loop (no hop to a thread and back); a large one
    goes to the inference pool, so the loop is never held for long. Both give the same answer."""
    import asyncio

    import cv2
    import numpy as np

    from service.http.routers import detect as route

    on_loop: list[bool] = []
    submit = route._submit

    def recording(*args):
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:
            on_loop.append(False)
        return submit(*args)

    monkeypatch.setattr(route, "_submit", recording)
    assert len(street_jpeg) <= route.DECODE_HERE_BYTES
    small = detect(client, street_jpeg)
    noise = np.random.default_rng(0).integers(0, 256, (900, 900, 3), dtype=np.uint8)
    big = cv2.imencode(".jpg", noise, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
    assert len(big) > route.DECODE_HERE_BYTES
    wide = cv2.imencode(".jpg", np.full((1080, 1920, 3), 90, np.uint8))[1].tobytes()  # few bytes, many pixels
    assert len(wide) <= route.DECODE_HERE_BYTES
    responses = [detect(client, jpeg) for jpeg in (big, wide)]
    assert small.status_code == 200 and all(r.status_code == 200 for r in responses)
    assert on_loop == [True, False, False]
    assert detect(client, street_jpeg).json() == small.json()

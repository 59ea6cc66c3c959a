"""Bad input of every kind gets a clear JSON error, and the service stays up for the next good request."""

from __future__ import annotations

from .conftest import T0, post_frame


def test_empty_corrupt_and_truncated_images_are_422_with_the_reason(client, street_jpeg):
    for data, reason in ((b"", "empty file"), (b"\x89PNG\r\n\x1a\n" + b"\0" * 50, "frame.jpg:"), (street_jpeg[: len(street_jpeg) // 2], "truncated")):
        r = client.post("/detect", files={"image": ("frame.jpg", data, "image/jpeg")})
        assert r.status_code == 422, r.text
        assert reason in r.json()["detail"]


def test_text_declared_as_text_is_415_and_text_declared_as_an_image_is_422(client):
    r = client.post("/detect", files={"image": ("notes.txt", b"hello", "text/plain")})
    assert r.status_code == 415 and "expected an image" in r.json()["detail"]
    r = client.post("/detect", files={"image": ("notes.jpg", b"hello, not really a jpeg", "image/jpeg")})
    assert r.status_code == 422 and "not a readable image" in r.json()["detail"]


def test_a_json_body_to_an_upload_route_is_415(client):
    r = client.post("/frames", json={"camera_id": "cam-1"})
    assert r.status_code == 415
    assert "multipart/form-data" in r.json()["detail"]


def test_body_over_the_limit_is_413_by_declared_length(make_client):
    client = make_client(max_upload_bytes=64 * 1024)
    r = client.post("/detect", files={"image": ("big.jpg", b"\xff" * 100_000, "image/jpeg")})
    assert r.status_code == 413
    assert "limit is 65,536 bytes" in r.json()["detail"]


def test_body_over_the_limit_is_413_when_streamed_without_a_length(make_client):
    client = make_client(max_upload_bytes=64 * 1024)
    boundary = "b0undary"
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="big.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'.encode()

    def chunks():
        yield head
        for _ in range(20):
            yield b"\xff" * 8192  # 160 KB in all, no Content-Length

    r = client.post("/detect", content=chunks(), headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 413
    assert "too large" in r.json()["detail"]


def test_bad_timestamps_are_422(client, street_jpeg):
    for value in ("yesterday", "2026-11-21T09:00:00", "2026-13-40T09:00:00+08:00"):
        r = client.post("/frames", data={"camera_id": "cam-1", "taken_at": value}, files={"image": ("f.jpg", street_jpeg, "image/jpeg")})
        assert r.status_code == 422, (value, r.text)
        assert r.json()["detail"][0]["loc"] == ["body", "taken_at"]


def test_malformed_json_is_422(client):
    r = client.post("/cases/1/transition", content=b'{"to": "dispatched", ', headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert "JSON" in r.json()["detail"][0]["msg"]


def test_a_burst_of_bad_requests_then_a_good_frame_succeeds(make_client, street_jpeg):
    client = make_client(max_upload_bytes=256 * 1024)
    bad = [
        lambda: client.post("/frames", data={"camera_id": "cam-1", "taken_at": T0.isoformat()}, files={"image": ("a.jpg", b"", "image/jpeg")}),
        lambda: client.post("/frames", data={"camera_id": "cam-1", "taken_at": T0.isoformat()}, files={"image": ("a.jpg", street_jpeg[:5000], "image/jpeg")}),
        lambda: client.post("/frames", data={"camera_id": "nope", "taken_at": T0.isoformat()}, files={"image": ("a.jpg", street_jpeg, "image/jpeg")}),
        lambda: client.post("/frames", data={"camera_id": "cam-1", "taken_at": "not a time"}, files={"image": ("a.jpg", street_jpeg, "image/jpeg")}),
        lambda: client.post("/frames", data={"camera_id": "cam-1"}),
        lambda: client.post("/frames", content=b"\x00" * 300_000, headers={"content-type": "multipart/form-data; boundary=x"}),
        lambda: client.post("/frames", content=b"--x\r\ngarbage", headers={"content-type": "multipart/form-data; boundary=x"}),
        lambda: client.post("/photos", files={"image": ("p.jpg", street_jpeg, "image/jpeg")}),
        lambda: client.post("/cases/1/transition", content=b"[", headers={"content-type": "application/json"}),
        lambda: client.post("/cases/999/transition", json={"to": "dispatched"}),
        lambda: client.get("/evidence/NOT-A-SHA"),
        lambda: client.put("/models/current", json={"name": "broken"}),
    ]
    responses = [call() for call in bad]
    codes = [r.status_code for r in responses]
    assert codes == [422, 422, 404, 422, 415, 413, 422, 422, 422, 404, 422, 422], [r.text for r in responses]
    assert all("detail" in r.json() for r in responses)
    good = post_frame(client, street_jpeg, T0)
    assert good.status_code == 200, good.text
    assert any(d["class_name"] == "motorcycle" for d in good.json()["detections"])
    assert client.get("/ready").json()["ready"] is True

"""Uploads a hostile client sends: a second file in the same field, and a body that stalls half-way."""

from __future__ import annotations

import json
import socket
import time

import pytest

from pipeline.cli import main
from tests.support.serve import ServeProcess

from .conftest import T0


def test_a_second_image_part_is_refused_not_ignored(client, street_jpeg):
    """FastAPI keeps the first of two `image` parts; the second would go unseen, so the request is refused."""
    files = [("image", ("a.jpg", street_jpeg, "image/jpeg")), ("image", ("b.jpg", street_jpeg, "image/jpeg"))]
    for path, data in (("/detect", {}), ("/frames", {"camera_id": "cam-1", "taken_at": T0.isoformat()})):
        r = client.post(path, data=data, files=files)
        assert r.status_code == 422, (path, r.text)
        assert r.json()["detail"] == "image: one file per request, got 2 'image' parts; send each image in a request of its own"
    assert client.post("/detect", files=files[:1]).status_code == 200  # one part: as before


@pytest.mark.slow
def test_a_stalled_upload_gets_408_and_its_connection_is_closed(camera_config, models_root, tmp_path, capsys, street_jpeg):
    """A real `streetorder serve` and a raw socket: the headers and a third of the body, then nothing."""
    db = f"sqlite:///{tmp_path}/ledger.db"
    assert main(["keys", "create", "--role", "camera", "--name", "cam", "--db", db, "--json"]) == 0
    key = json.loads(capsys.readouterr().out)["key"]
    args = ["--config", str(camera_config), "--db", db, "--models-dir", str(models_root), "--threads", "1", "--evidence-dir", str(tmp_path / "engine")]
    with ServeProcess(args, tmp_path, env={"STREETORDER_BODY_TIMEOUT_S": "1"}) as serve:
        boundary = "b0undary"
        body = (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="f.jpg"\r\nContent-Type: image/jpeg\r\n\r\n').encode() + street_jpeg + f"\r\n--{boundary}--\r\n".encode()
        head = (
            f"POST /detect HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {key}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", serve.port), timeout=10) as s:
            s.sendall(head + body[: len(body) // 3])
            started = time.monotonic()
            answer = b""
            while chunk := s.recv(65536):  # until the service closes the connection (or the 10 s socket timeout)
                answer += chunk
            waited = time.monotonic() - started
        status_line, _, rest = answer.partition(b"\r\n")
        assert status_line == b"HTTP/1.1 408 Request Timeout", answer[:300]
        assert b"connection: close" in rest.lower() and b"request body stalled: no bytes for 1 s" in rest
        assert 0.9 <= waited < 5, waited
        # a whole body within the timeout is served as before, by the same service
        with socket.create_connection(("127.0.0.1", serve.port), timeout=30) as s:
            s.sendall(head + body)
            assert s.recv(64).startswith(b"HTTP/1.1 200 ")

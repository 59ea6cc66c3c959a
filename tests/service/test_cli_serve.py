"""`streetorder serve`: its help, and a real uvicorn process answering on a port."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from pipeline.cli import main
from tests.conftest import REPO


def test_help_lists_the_options_and_the_environment(capsys):
    with pytest.raises(SystemExit) as e:
        main(["serve", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--host", "--port", "--config", "--ledger", "--model", "--db", "--insecure-open", "streetorder keys create"):
        assert flag in out


def test_serve_starts_a_working_service_with_role_keys_and_no_key_in_its_access_log(camera_config, models_root, tmp_path, capsys):
    db = f"sqlite:///{tmp_path}/ledger.db"
    assert main(["keys", "create", "--role", "admin", "--name", "ops", "--db", db, "--json"]) == 0
    key = json.loads(capsys.readouterr().out)["key"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable, "-m", "pipeline.cli", "serve", "--port", str(port), "--config", str(camera_config), "--db", db,
        "--models-dir", str(models_root), "--threads", "1", "--evidence-dir", str(tmp_path / "engine"), "--log-level", "info",
    ]
    log = (tmp_path / "serve.log").open("w+")
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "the service did not come up"
            time.sleep(0.3)
        assert httpx.get(f"{base}/ready").json() == {"ready": True, "warnings": []}
        assert httpx.get(f"{base}/ready", headers={"X-API-Key": key}).json()["model"] == "coco"
        assert httpx.get(f"{base}/cases").status_code == 401
        assert httpx.get(f"{base}/cases", headers={"X-API-Key": key}).json()["total"] == 0
        in_url = httpx.get(f"{base}/cases", params={"api_key": key, "status": "detected"})
        assert in_url.status_code == 401 and key not in in_url.text and "X-API-Key header" in in_url.json()["detail"]
        assert httpx.get(f"{base}/no-such-route", params={"api_key": key}).status_code == 404  # unknown routes unchanged
        assert httpx.get(f"{base}/cases?api%5Fkey={key}").status_code == 401  # a percent-encoded name is the same parameter
        assert httpx.get(f"{base}/no-such-route/{key}").status_code == 404  # a key anywhere in the request line
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    out = (tmp_path / "serve.log").read_text()
    assert "GET /cases?api_key=REDACTED&status=detected" in out and "GET /no-such-route?api_key=REDACTED" in out
    assert "GET /cases?api%5Fkey=REDACTED" in out and "GET /no-such-route/REDACTED" in out
    assert key not in out


def test_serve_refuses_to_start_without_keys_unless_insecure_open(camera_config, models_root, tmp_path, capsys):
    args = ["serve", "--config", str(camera_config), "--db", f"sqlite:///{tmp_path}/empty.db", "--models-dir", str(models_root), "--evidence-dir", str(tmp_path / "e")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "no API keys are configured" in err and "streetorder keys create --role admin" in err and "--insecure-open" in err


def test_a_bad_camera_config_stops_serve_with_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "cams.yaml"
    bad.write_text("cameras: [{id: c1}]\n")
    assert main(["serve", "--config", str(bad), "--db", f"sqlite:///{tmp_path}/l.db", "--insecure-open"]) == 2  # past the no-key refusal
    err = capsys.readouterr().err
    assert "cams.yaml:1: cameras[0].location: Field required" in err

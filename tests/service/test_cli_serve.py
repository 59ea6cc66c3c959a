"""`streetorder serve`: its help, and a real uvicorn process answering on a port."""

from __future__ import annotations

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
    for flag in ("--host", "--port", "--config", "--ledger", "--model", "--db", "STREETORDER_API_KEY"):
        assert flag in out


def test_serve_starts_a_working_service(camera_config, models_root, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(REPO), "STREETORDER_API_KEY": "cli-key-1"}
    cmd = [
        sys.executable, "-m", "pipeline.cli", "serve", "--port", str(port), "--config", str(camera_config), "--db", f"sqlite:///{tmp_path}/ledger.db",
        "--models-dir", str(models_root), "--threads", "1", "--evidence-dir", str(tmp_path / "engine"), "--log-level", "warning",
    ]
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "the service did not come up"
            time.sleep(0.3)
        assert httpx.get(f"{base}/ready").json()["model"] == "coco"
        assert httpx.get(f"{base}/cases").status_code == 401
        assert httpx.get(f"{base}/cases", headers={"X-API-Key": "cli-key-1"}).json() == {"count": 0, "cases": []}
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_a_bad_camera_config_stops_serve_with_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "cams.yaml"
    bad.write_text("cameras: [{id: c1}]\n")
    assert main(["serve", "--config", str(bad), "--db", f"sqlite:///{tmp_path}/l.db"]) == 2
    err = capsys.readouterr().err
    assert "cams.yaml:1: cameras[0].location: Field required" in err

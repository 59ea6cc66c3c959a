"""`streetorder serve`: its help, and a real uvicorn process answering on a port."""

from __future__ import annotations

import json

import httpx
import pytest

from pipeline.cli import main
from tests.support.serve import ServeProcess


def test_help_lists_the_options_and_the_environment(capsys):
    with pytest.raises(SystemExit) as e:
        main(["serve", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--host", "--port", "--config", "--ledger", "--model", "--db", "--insecure-open", "streetorder keys create"):
        assert flag in out


@pytest.mark.slow
def test_serve_starts_a_working_service_with_role_keys_and_no_key_in_its_access_log(camera_config, models_root, tmp_path, capsys):
    db = f"sqlite:///{tmp_path}/ledger.db"
    assert main(["keys", "create", "--role", "admin", "--name", "ops", "--db", db, "--json"]) == 0
    key = json.loads(capsys.readouterr().out)["key"]
    args = ["--config", str(camera_config), "--db", db, "--models-dir", str(models_root), "--threads", "1", "--evidence-dir", str(tmp_path / "engine"), "--log-level", "info"]
    with ServeProcess(args, tmp_path) as serve:
        base = serve.base
        assert httpx.get(f"{base}/ready").json() == {"ready": True, "warnings": []}
        assert httpx.get(f"{base}/ready", headers={"X-API-Key": key}).json()["model"] == "coco"
        assert httpx.get(f"{base}/cases").status_code == 401
        assert httpx.get(f"{base}/cases", headers={"X-API-Key": key}).json()["total"] == 0
        in_url = httpx.get(f"{base}/cases", params={"api_key": key, "status": "detected"})
        assert in_url.status_code == 401 and key not in in_url.text and "X-API-Key header" in in_url.json()["detail"]
        assert httpx.get(f"{base}/no-such-route", params={"api_key": key}).status_code == 404  # unknown routes unchanged
        assert httpx.get(f"{base}/cases?api%5Fkey={key}").status_code == 401  # a percent-encoded name is the same parameter
        assert httpx.get(f"{base}/no-such-route/{key}").status_code == 404  # a key anywhere in the request line
    out = serve.output()
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

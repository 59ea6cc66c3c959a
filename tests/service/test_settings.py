"""Settings from the environment and flags; the ledger config they produce."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from service.settings import ServiceSettings


def _environ(monkeypatch, env: dict[str, str]) -> None:
    """The process environment holds exactly these STREETORDER_* variables."""
    for var in [v for v in os.environ if v.startswith("STREETORDER_")]:
        monkeypatch.delenv(var)
    for var, value in env.items():
        monkeypatch.setenv(var, value)


def test_environment_then_flags(tmp_path, monkeypatch):
    _environ(monkeypatch, {"STREETORDER_CAMERA_CONFIG": "/etc/so/cams.yaml", "STREETORDER_THREADS": "2", "STREETORDER_API_KEY": "sekret-123", "STREETORDER_PERSIST_MODEL": "true",
                           "STREETORDER_MAX_UPLOAD_BYTES": "4096", "STREETORDER_MODELS": str(tmp_path), "STREETORDER_MODEL": ""})
    s = ServiceSettings.load(threads=4, model=None)
    assert s.camera_config == Path("/etc/so/cams.yaml") and s.threads == 4 and s.persist_model and s.max_upload_bytes == 4096
    assert s.api_key.get_secret_value() == "sekret-123" and "sekret" not in repr(s)
    assert s.models_dir == tmp_path and s.model is None  # empty variables count as unset


def test_invalid_values_name_the_variable(monkeypatch):
    _environ(monkeypatch, {"STREETORDER_THREADS": "many"})
    with pytest.raises(ValueError, match=r"threads \(STREETORDER_THREADS\)"):
        ServiceSettings.load()
    _environ(monkeypatch, {})
    with pytest.raises(ValueError, match="public_url"):
        ServiceSettings.load(public_url="streetorder.example")
    with pytest.raises(ValueError, match="multiple of 32"):
        ServiceSettings.load(imgsz=100)


def test_ledger_settings_apply_the_database_and_public_url(tmp_path, monkeypatch):
    ledger_yaml = tmp_path / "ledger.yaml"
    ledger_yaml.write_text("relapse_days: 3\n")
    _environ(monkeypatch, {"STREETORDER_LEDGER_CONFIG": str(ledger_yaml), "STREETORDER_DB": "sqlite:///x.db"})
    s = ServiceSettings.load(public_url="https://so.city.example/")
    cfg = s.ledger_settings()
    assert (cfg.relapse_days, cfg.database_url, cfg.evidence_base_url) == (3, "sqlite:///x.db", "https://so.city.example/evidence/")

"""Trusted proxies only (issue 22, item 3): `X-Forwarded-For` counts only from the addresses in
`--forwarded-allow-ips`, so a client cannot reset its per-address failed-login limit with a new header value."""

from __future__ import annotations

import json

import httpx
import pytest
from pydantic import ValidationError

from pipeline.cli import main
from service.http.proxies import proxy_options
from service.settings import ServiceSettings
from tests.support.serve import ServeProcess


def test_no_proxy_is_trusted_unless_named():
    assert proxy_options(ServiceSettings()) == {"proxy_headers": False, "forwarded_allow_ips": ""}
    assert proxy_options(ServiceSettings(forwarded_allow_ips=" 10.0.0.5, 10.1.0.0/16 ")) == {"proxy_headers": True, "forwarded_allow_ips": "10.0.0.5,10.1.0.0/16"}
    with pytest.raises(ValidationError, match="not an IP address"):
        ServiceSettings(forwarded_allow_ips="10.0.0.5,proxy.local")


def _wrong_keys(base: str, forwarded: list[str]) -> list[int]:
    """One wrong key per header value, each from a new X-Forwarded-For address; the statuses."""
    with httpx.Client(base_url=base, timeout=30) as http:
        return [http.get("/cases", headers={"X-API-Key": "wrong", "X-Forwarded-For": ip}).status_code for ip in forwarded]


def _login_attempts(base: str, forwarded: list[str]) -> list[int]:
    with httpx.Client(base_url=base, timeout=30) as http:
        return [http.post("/review/login", data={"key": "wrong"}, headers={"X-Forwarded-For": ip, "Origin": base}).status_code for ip in forwarded]


@pytest.mark.slow
def test_a_forwarded_header_cannot_reset_the_per_address_limit(camera_config, models_root, tmp_path, capsys):
    db = f"sqlite:///{tmp_path}/ledger.db"
    assert main(["keys", "create", "--role", "admin", "--name", "ops", "--db", db, "--json"]) == 0
    capsys.readouterr()
    args = ["--config", str(camera_config), "--db", db, "--models-dir", str(models_root), "--threads", "1", "--evidence-dir", str(tmp_path / "engine"), "--log-level", "warning"]
    env = {"STREETORDER_AUTH_FAILURES_PER_ADDRESS": "3"}
    spoofed = [f"203.0.113.{i}" for i in range(1, 7)]
    with ServeProcess(args, tmp_path, env=env) as serve:  # the default: no proxy trusted
        keys = _wrong_keys(serve.base, spoofed)
        logins = _login_attempts(serve.base, spoofed)
    # uvicorn's default believed 127.0.0.1's header: every new value got a fresh budget, six 401s
    assert keys == [401, 401, 401, 429, 429, 429], keys
    assert logins == [429] * 6, logins  # the same address, still over its limit
    # a named proxy is believed: behind it, each client has its own budget
    with ServeProcess([*args, "--forwarded-allow-ips", "127.0.0.1"], tmp_path, env=env) as serve:
        assert _wrong_keys(serve.base, spoofed) == [401] * 6
        assert _wrong_keys(serve.base, ["198.51.100.1"] * 4) == [401, 401, 401, 429]

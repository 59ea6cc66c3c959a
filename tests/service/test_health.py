"""Liveness and readiness."""

from __future__ import annotations

from sqlalchemy import create_engine

from service.http.keys import Role

from .conftest import key_of, without_key


def test_health_and_ready(client):
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")  # the client sends the admin key
    assert ready.status_code == 200
    assert ready.json() == {
        "ready": True, "model": "coco", "model_error": None, "database": True, "database_error": None,
        "config_version": 1, "config_error": None, "backlog": 0, "backlog_error": None, "quarantined": 0, "streams": [], "warnings": [],
    }


def test_ready_tells_an_anonymous_or_non_admin_caller_only_ready_or_not(client):
    with without_key(client):
        answers = [client.get("/ready"), client.get("/ready", headers=key_of(client, Role.CAMERA)), client.get("/ready", headers=key_of(client, Role.REVIEWER))]
        assert client.get("/ready", headers={"X-API-Key": "so_wrong"}).status_code == 401  # a wrong key is an error, not anonymity
    for r in answers:
        assert (r.status_code, r.json()) == (200, {"ready": True, "warnings": []})


def test_ready_is_503_when_the_database_is_gone(client, monkeypatch):
    state = client.app.state.service
    monkeypatch.setattr(state.store.db, "engine", create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none"))
    r = client.get("/ready")
    assert r.status_code == 503
    assert r.json()["database"] is False and "OperationalError" in r.json()["database_error"]
    assert client.get("/health").status_code == 200

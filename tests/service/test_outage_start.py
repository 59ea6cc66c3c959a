"""Starting during a database outage (issue 22): a real `streetorder serve`, the real PostgreSQL behind a TCP proxy
the test holds down while the service starts (a real outage, not a mock). The service starts degraded, knows its
keys from the key cache it wrote when it last saw the database, answers a camera's frames and photos with 202,
says why /ready is 503, and every journaled report lands as a case exactly once after the proxy comes up."""

from __future__ import annotations

import json
import os
import stat
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from pipeline.cases.config import LedgerConfig
from pipeline.db.engine import Database
from pipeline.db.urls import normalize_url
from service.http.app import create_app
from service.http.auth import NoKeyCache
from service.http.key_cache import KeyCache, KeyCacheError
from service.http.keys import KeySnapshot, KeyStore, Principal, Role, digest
from service.runtime.ledger import unreachable
from service.settings import ServiceSettings
from tests.cases.conftest import TABLES
from tests.conftest import _pg_admin_conninfo
from tests.support.ledger import ledger_rows
from tests.support.serve import ServeProcess

from .conftest import T0
from .tcp_proxy import TcpProxy


# ---- quick: the key cache file and what counts as an outage -------------------------------------------


def test_the_key_cache_keeps_hashes_only_in_a_0600_file_and_refuses_one_others_may_write(tmp_path):
    cache = KeyCache(tmp_path / "var" / "keys.json")
    assert cache.load() is None
    key = "so_" + "x" * 43
    cache.save(KeySnapshot({digest(key): Principal("cam-gate-1", Role.CAMERA, 7)}, datetime(2026, 1, 2, tzinfo=UTC)))
    assert stat.S_IMODE(cache.path.stat().st_mode) == 0o600
    assert key not in cache.path.read_text() and digest(key) in cache.path.read_text()
    loaded = cache.load()
    assert loaded.keys == {digest(key): Principal("cam-gate-1", Role.CAMERA, 7)} and loaded.taken_at == datetime(2026, 1, 2, tzinfo=UTC)

    os.chmod(cache.path, 0o622)  # anyone who can write it could let a key of their own in during an outage
    with pytest.raises(KeyCacheError, match="writable by others"):
        cache.load()
    os.chmod(cache.path, 0o600)
    cache.path.write_text('{"format": 1, "written_at": "2026-01-02T00:00:00Z", "keys": [{"key_hash": "not a digest"}]}')
    with pytest.raises(KeyCacheError, match="cannot be read"):
        cache.load()


def test_only_a_postgresql_server_that_does_not_answer_is_an_outage():
    pg = "postgresql://u@db.example:5432/ledger"
    refused = psycopg.OperationalError('connection failed: connection to server at "10.0.0.5", port 5432 failed: Connection refused')
    starting = psycopg.OperationalError('connection failed: connection to server at "10.0.0.5", port 5432 failed: FATAL:  the database system is starting up')
    wrong_password = psycopg.OperationalError('connection failed: connection to server at "10.0.0.5", port 5432 failed: FATAL:  password authentication failed for user "u"')
    assert unreachable(refused, pg) and unreachable(starting, pg)
    assert not unreachable(wrong_password, pg)  # a mistake to report at once, not an outage to ride out
    assert not unreachable(refused, "sqlite:///var/ledger.db")  # a local file is not a server that can be away
    assert not unreachable(ValueError("bad"), pg)


# ---- PostgreSQL behind a proxy ----------------------------------------------------------------------


@pytest.fixture
def pg_proxy(pg_url):
    """The session's PostgreSQL database, emptied, with keys: camera (active), a revoked camera key and admin;
    yields (proxy, URL through the proxy, keys by name)."""
    engine = create_engine(normalize_url(pg_url))
    with engine.begin() as conn:
        for table in TABLES:
            conn.execute(text(f"DELETE FROM {table}"))
    engine.dispose()
    store = KeyStore(Database(pg_url, auto_upgrade=False))
    keys = {"camera": store.create("cam-gate-1", Role.CAMERA).key, "revoked": store.create("old-camera", Role.CAMERA).key, "admin": store.create("ops", Role.ADMIN).key}
    store.revoke(name="old-camera")
    store.db.dispose()
    u = make_url(normalize_url(pg_url))
    proxy = TcpProxy(u.host or "127.0.0.1", u.port or 5432)
    yield proxy, u.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False), keys
    proxy.close()



def _journaled_incidents(journal) -> list[str]:
    """The incident ids of the reports waiting in the journal (the journal's own lines, read as written)."""
    lines = [json.loads(line) for line in journal.read_text().splitlines() if line.strip()]
    return [line["report"]["incident_id"] for line in lines if "report" in line]


def _wait(what: str, check, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout:.0f} s"
        time.sleep(0.05)
    return result


@pytest.mark.slow
def test_serve_starts_while_postgresql_is_unreachable_journals_frames_and_all_land_once_it_returns(pg_proxy, pg_url, camera_config, models_root, tmp_path, street_jpeg):
    proxy, url, keys = pg_proxy
    ledger = tmp_path / "ledger.yaml"
    ledger.write_text(f"evidence_dir: {tmp_path / 'evidence'}\n")
    journal = tmp_path / "var" / "report-journal.jsonl"
    args = ["--config", str(camera_config), "--db", url, "--ledger", str(ledger), "--models-dir", str(models_root), "--threads", "1",
            "--evidence-dir", str(tmp_path / "engine"), "--journal", str(journal), "--log-level", "warning"]
    env = {"STREETORDER_RETRY_INTERVAL_S": "0.2"}
    cam = {"X-API-Key": keys["camera"]}

    def frame(base: str, at: datetime, headers=cam) -> httpx.Response:
        return httpx.post(f"{base}/frames", data={"camera_id": "cam-1", "taken_at": at.isoformat()}, files={"image": ("f.jpg", street_jpeg, "image/jpeg")}, headers=headers, timeout=60)

    def photo(base: str, i: int) -> httpx.Response:
        at = datetime.now(UTC) - timedelta(minutes=10) + timedelta(seconds=i)
        form = {"lat": f"{31.0 + 0.01 * i:.4f}", "lon": "121.0", "taken_at": at.isoformat(), "district": "黄浦区", "point": f"P{i}"}
        return httpx.post(f"{base}/photos", data=form, files={"image": (f"p{i}.jpg", street_jpeg, "image/jpeg")}, headers=cam, timeout=60)

    # the last time the service saw the database: it wrote the key cache (hashes of the active keys only)
    started = time.monotonic()
    with ServeProcess(args, tmp_path, env=env) as serve:
        up_start_s = time.monotonic() - started
        assert frame(serve.base, T0).status_code == 200
    cache = journal.with_name("api-keys-last-seen.json")
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    cached = cache.read_text()
    assert digest(keys["camera"]) in cached and digest(keys["admin"]) in cached and digest(keys["revoked"]) not in cached
    assert not any(k in cached for k in keys.values())

    proxy.cut()  # PostgreSQL is unreachable for the service from here on
    started = time.monotonic()
    serve = ServeProcess(args, tmp_path, env=env)
    try:
        start_s = time.monotonic() - started
        assert "starting degraded" in serve.output()

        assert httpx.get(f"{serve.base}/health").status_code == 200
        brief = httpx.get(f"{serve.base}/ready")
        assert brief.status_code == 503 and brief.json()["ready"] is False
        assert "the ledger database is unreachable" in brief.json()["reason"] and "journaled" in brief.json()["reason"]
        admin = httpx.get(f"{serve.base}/ready", headers={"X-API-Key": keys["admin"]}).json()  # known from the cache
        assert admin["database"] is False and "OperationalError" in admin["database_error"] and admin["model"] == "coco"
        assert httpx.get(f"{serve.base}/cases", headers={"X-API-Key": keys["admin"]}).status_code == 503  # the ledger itself is away

        # keys: the active camera key passes; the one revoked before the outage and an unknown one do not
        assert frame(serve.base, T0 + timedelta(seconds=1), {"X-API-Key": keys["revoked"]}).status_code == 401
        unknown = frame(serve.base, T0 + timedelta(seconds=1), {"X-API-Key": "so_" + "z" * 43})
        assert unknown.status_code == 401 and "keys are checked against those active on" in unknown.json()["detail"]

        answers = [frame(serve.base, T0 + timedelta(seconds=s)) for s in (2, 4, 6, 8)] + [photo(serve.base, i) for i in range(3)]
        assert [r.status_code for r in answers] == [202] * 7, [r.text for r in answers]
        assert all("journaled" in r.json()["detail"] for r in answers)
        assert frame(serve.base, T0 + timedelta(seconds=8)).status_code == 409  # frame order holds in the outage too
        waiting = _journaled_incidents(journal)
        assert len(waiting) >= 4, waiting  # the motorbike's incident (opened, updated) and one per photo
        assert ledger_rows(pg_url)["cases"] == 0

        restored = time.monotonic()
        proxy.restore()
        _wait("the journal draining", lambda: (r := httpx.get(f"{serve.base}/ready", headers={"X-API-Key": keys["admin"]})).status_code == 200 and r.json()["backlog"] == 0)
        drain_s = time.monotonic() - restored
        landed = ledger_rows(pg_url)
        assert landed["incidents"] == sorted(set(waiting)), (landed, waiting)
        assert landed["cases"] == landed["created"] == len(set(waiting))  # each once
        assert landed["frames"]["cam-1"] == T0 + timedelta(seconds=8)
        assert journal.read_text() == ""
        assert frame(serve.base, T0 + timedelta(seconds=10)).status_code == 200  # the link is up: straight to the ledger
        print(f"\nstart with the database up {up_start_s:.2f} s, degraded start {start_s:.2f} s (to /health 200), journal of {len(waiting)} report(s) drained {drain_s:.2f} s after the database returned")
    finally:
        serve.stop()


@pytest.mark.slow
def test_a_start_during_an_outage_migrates_the_database_when_it_returns(pg_url, camera_config, models_root, tmp_path, street_jpeg):
    """A database that was never migrated (say, restored empty) and unreachable at start: once it answers, the
    schema is brought to head before anything is written, then the journal lands."""
    camera_key = "so_" + uuid.uuid4().hex * 2
    name = f"so_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_pg_admin_conninfo(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    admin_url = make_url(normalize_url(os.environ.get("STREETORDER_TEST_PG", "postgresql://root@127.0.0.1:5432/test")))
    proxy = TcpProxy(admin_url.host or "127.0.0.1", admin_url.port or 5432)
    proxy.cut()
    url = admin_url.set(host="127.0.0.1", port=proxy.port, database=name).render_as_string(hide_password=False)
    journal = tmp_path / "journal.jsonl"
    KeyCache(journal.with_name("api-keys-last-seen.json")).save(KeySnapshot({digest(camera_key): Principal("cam-gate-1", Role.CAMERA, 1)}, datetime.now(UTC)))
    settings = ServiceSettings(
        camera_config=camera_config, ledger=LedgerConfig(database_url=url, evidence_dir=tmp_path / "evidence"), models_dir=models_root,
        evidence_dir=tmp_path / "engine", journal=journal, threads=1, retry_interval_s=0.2,
    )
    try:
        with TestClient(create_app(settings), headers={"X-API-Key": camera_key}) as client:
            state = client.app.state.service
            assert not state.link.up
            form = {"lat": "31.2", "lon": "121.4", "taken_at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(), "point": "P9"}
            r = client.post("/photos", data=form, files={"image": ("p.jpg", street_jpeg, "image/jpeg")})
            assert r.status_code == 202, r.text
            waiting = _journaled_incidents(journal)
            assert waiting
            proxy.restore()
            _wait("the link coming up", lambda: state.link.up and state.live.backlog == 0)
        direct = admin_url.set(database=name).render_as_string(hide_password=False)
        assert ledger_rows(direct)["incidents"] == sorted(set(waiting))
    finally:
        proxy.close()
        with psycopg.connect(_pg_admin_conninfo(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_no_key_cache_and_no_database_refuses_to_start_with_the_reason(tmp_path, camera_config, models_root):
    """Blind, the service would have to let every key in or none: it says so and does not start."""
    settings = ServiceSettings(
        camera_config=camera_config, ledger=LedgerConfig(database_url="postgresql://nobody@127.0.0.1:1/ledger", evidence_dir=tmp_path / "evidence"),
        models_dir=models_root, evidence_dir=tmp_path / "engine", journal=tmp_path / "journal.jsonl", threads=1,
    )
    with pytest.raises(NoKeyCache, match=r"unreachable .*no key cache at .*api-keys-last-seen.json"):
        create_app(settings)


def test_offline_keys_are_judged_by_the_last_snapshot_and_a_revoke_rewrites_it(tmp_path, ledger_template):
    import shutil

    shutil.copy(ledger_template, tmp_path / "ledger.db")
    store = KeyStore(Database(f"sqlite:///{tmp_path / 'ledger.db'}", auto_upgrade=False))
    a, b = store.create("cam-a", Role.CAMERA), store.create("cam-b", Role.CAMERA)
    saved: list[KeySnapshot] = []
    store.on_snapshot = saved.append
    store.refresh_known()
    assert len(saved) == 1 and set(saved[0].keys) == {digest(a.key), digest(b.key)}
    store.refresh_known()
    assert len(saved) == 1  # nothing changed: nothing rewritten

    store.revoke(key_id=b.info.id)  # revoked here: the snapshot (and the cache) loses it at once
    assert set(saved[-1].keys) == {digest(a.key)}

    down = [True]
    store.offline = lambda: down[0]

    def no_database():
        raise AssertionError("the database was asked while offline")

    store.db._sessions = no_database
    assert store.verify(a.key) == Principal("cam-a", Role.CAMERA, a.info.id)
    assert store.verify(b.key) is None and store.verify("so_" + "q" * 43) is None
    down[0] = False
    with pytest.raises(AssertionError, match="asked while offline"):  # online, an unknown key is looked up
        store.verify("so_" + "r" * 43)

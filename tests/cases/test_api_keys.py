"""The service's API keys and review sessions in the ledger database, on SQLite and PostgreSQL: only hashes are
stored, revocation ends a key's sessions, sessions expire. Also the ledger paging the service's lists use."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from pipeline.cases.queries import CaseFilter
from pipeline.db.engine import Database
from service.http.keys import KeyStore, Role, digest

from .factory import incident


def test_keys_and_sessions_on_both_backends(db_url):
    now = [datetime(2026, 12, 1, 8, 0, tzinfo=UTC)]
    db = Database(db_url)
    keys = KeyStore(db, clock=lambda: now[0])
    cam, rev = keys.create("gate-cam", Role.CAMERA), keys.create("王审核", "reviewer")
    assert keys.verify(cam.key).role == Role.CAMERA and keys.verify(rev.key).name == "王审核"
    assert keys.verify(cam.key[:-1] + "x") is None and keys.verify("not-a-key") is None
    with db.engine.connect() as conn:
        rows = str(conn.execute(text("SELECT * FROM api_keys")).fetchall())
    assert cam.key not in rows and rev.key not in rows and digest(cam.key) in rows
    token, expires = keys.open_session(keys.verify(rev.key), timedelta(hours=8))
    assert keys.session(token).name == "王审核" and expires == now[0] + timedelta(hours=8)
    now[0] += timedelta(hours=8)
    assert keys.session(token) is None  # expired
    token, _ = keys.open_session(keys.verify(rev.key), timedelta(hours=8))
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM review_sessions")).scalar() == 1  # the expired one was cleared
    assert [k.name for k in keys.revoke(name="王审核")] == ["王审核"]
    assert keys.session(token) is None and keys.verify(rev.key) is None and keys.active_count() == 1
    assert [k.id for k in keys.list(include_revoked=True)] == [cam.info.id, rev.info.id] and [k.id for k in keys.list()] == [cam.info.id]
    assert keys.close_session(token) is False
    db.dispose()


@pytest.mark.slow
def test_a_verified_key_is_remembered_briefly_and_a_local_revoke_is_at_once(tmp_path):
    db = Database(f"sqlite:///{tmp_path}/k.db")
    service, cli = KeyStore(db, cache_s=2.0), KeyStore(db)
    a, b = service.create("a", Role.CAMERA).key, service.create("b", Role.CAMERA).key
    assert service.verify(a) and service.verify(b)
    looked_up = time.monotonic()  # the lookup that remembers `a` ran before this
    cli.revoke(name="a")  # another process
    assert service.verify(a) is not None  # still remembered (the revoke took well under cache_s)...
    while True:  # ...for cache_s only: poll until it is refused
        asked = time.monotonic()
        if service.verify(a) is None:
            break
        assert asked - looked_up < 10, "a key revoked elsewhere was still accepted 10 s later"
        time.sleep(0.02)
    assert asked - looked_up <= 2.0 + 0.5, f"refused {asked - looked_up:.2f} s after the lookup, well past cache_s"
    service.revoke(name="b")
    assert service.verify(b) is None  # revoked here: at once
    db.dispose()


def _poll(keys: KeyStore, key: str, seconds: float) -> list[tuple[float, bool]]:
    """(time, accepted) of `cached` (memory only, as a camera's request asks) every 20 ms for `seconds`."""
    out, start = [], time.monotonic()
    while (t := time.monotonic() - start) < seconds:
        out.append((t, keys.cached(key) is not None))
        time.sleep(0.02)
    return out


@pytest.mark.slow
def test_a_key_in_use_is_renewed_ahead_of_time_and_a_revoke_elsewhere_still_lands_within_the_cache_time(tmp_path):
    db = Database(f"sqlite:///{tmp_path}/k.db")
    service, cli = KeyStore(db, cache_s=1.0), KeyStore(db)
    a = service.create("a", Role.CAMERA).key
    assert service.verify(a)
    # a camera's requests answered from memory alone, well past the first lookup's cache time: each answer past
    # half of it had a lookup run in the background
    assert all(ok for _, ok in _poll(service, a, 2.5))
    cli.revoke(name="a")  # another process
    seen = _poll(service, a, 2.0)
    refused = [t for t, ok in seen if not ok]
    assert refused and all(not ok for t, ok in seen if t >= refused[0])  # once refused, for good
    assert refused[0] <= 1.0 + 0.3  # within the cache time (and a little scheduling slack)
    db.dispose()


def test_list_count_and_districts_page_through_the_ledger(store, tmp_path):
    ids = [store.post_incident(incident(tmp_path, f"i{i}", point=f"P-{i}", district="黄浦区" if i % 2 else "静安区")).case_id for i in range(5)]
    assert [c.id for c in store.list(limit=2, offset=2)] == ids[2:4]
    assert store.count() == 5 and store.count(district="黄浦区") == 2
    assert store.count(status=("detected", "reopened")) == 5 and store.count(status="dispatched") == 0
    assert store.districts(status=("detected",)) == ["静安区", "黄浦区"]


def test_one_case_filter_serves_list_count_and_districts(store, tmp_path):
    for i in range(4):
        store.post_incident(incident(tmp_path, f"i{i}", point=f"P-{i}", district="黄浦区" if i % 2 else "静安区"))
    where = CaseFilter(status="detected", district="黄浦区")
    assert [c.id for c in store.list(where)] == [c.id for c in store.list(status="detected", district="黄浦区")]
    assert store.count(where) == len(store.list(where)) == 2 and store.districts(where) == ["黄浦区"]
    with pytest.raises(TypeError, match="not both"):
        store.list(where, district="静安区")

"""The database layer on both backends: migrations equal the models, a fresh file just works, concurrent
posts at one spot still make one case, and times keep their zone."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from pipeline.cases.config import LedgerConfig
from pipeline.cases.store import CaseStore
from pipeline.db.engine import Database, alembic_config, current_revision, head_revision, upgrade
from pipeline.db.tables import Base, Case
from pipeline.db.urls import normalize_url

from .factory import T0, FrameClock, incident


def test_migrations_produce_exactly_the_models(db_url):
    db = Database(db_url)
    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata) == []
    assert current_revision(db.engine) == head_revision()
    db.dispose()


def test_migrations_go_down_and_up_again(db_url):
    db = Database(db_url)
    with db.engine.connect() as conn:
        command.downgrade(alembic_config(conn), "base")
        conn.commit()
    assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
    upgrade(db.engine)
    assert {"cases", "case_incidents", "case_events", "case_evidence", "outbox"} <= set(inspect(db.engine).get_table_names())
    db.dispose()


def test_a_fresh_sqlite_file_in_a_new_folder_just_works(tmp_path, clock):
    url = f"sqlite:///{tmp_path}/new/folder/ledger.db"
    store = CaseStore.open(LedgerConfig(database_url=url, evidence_dir=tmp_path / "ev"), clock=clock)
    assert store.post_incident(incident(tmp_path, "a")).created
    with store.db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    store.close()


def test_times_come_back_aware_and_equal_whatever_zone_went_in(store, tmp_path):
    cid = store.post_incident(incident(tmp_path, "a", first_seen=T0)).case_id
    c = store.get(cid)
    assert c.first_seen == T0 and c.first_seen.utcoffset() == timedelta(0)
    with store.db.transaction() as s, pytest.raises(Exception, match="naive datetime"):
        s.get(Case, cid).updated_at = datetime(2026, 11, 2, 9, 0)
        s.flush()


def test_urls_are_routed_to_psycopg3():
    assert normalize_url("postgresql://u@h:5432/d") == "postgresql+psycopg://u@h:5432/d"
    assert normalize_url("postgres://u@h/d") == "postgresql+psycopg://u@h/d"
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"
    with pytest.raises(ValueError, match="unsupported database"):
        Database("mysql://u@h/d")


def test_concurrent_posts_at_one_spot_make_one_case(db_url, tmp_path):
    """Two engine processes (here: two stores with their own connections) post at the same moment."""
    cfg = LedgerConfig(database_url=db_url, evidence_dir=tmp_path / "ev")
    stores = [CaseStore.open(cfg, clock=FrameClock(T0)) for _ in range(2)]
    reports = [[incident(tmp_path, f"w{w}-{i}", camera_id=f"cam-{w}") for i in range(4)] for w in range(2)]
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def work(w: int) -> None:
        try:
            start.wait()
            for r in reports[w]:
                stores[w].post_incident(r)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    cases = stores[0].list()
    assert len(cases) == 1 and len(cases[0].incident_ids) == 8
    with stores[0].db.transaction() as s:
        assert s.execute(text("SELECT count(*) FROM case_events WHERE kind = 'created'")).scalar() == 1
    for s in stores:
        s.close()

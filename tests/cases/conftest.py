"""Fixtures for the ledger tests: a store on SQLite and on the real PostgreSQL, a frame clock, incidents.

PostgreSQL: one fresh database per test session (so parallel runs never collide), migrated once, truncated
before each test, dropped at the end. $STREETORDER_TEST_PG points at the admin database (default: the local
trust-auth server's `test`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import text

from pipeline.cases.config import LedgerConfig
from pipeline.cases.store import CaseStore
from pipeline.db.engine import Database

from .factory import T0, FrameClock

TABLES = ("annotations", "review_sessions", "api_keys", "outbox", "case_evidence", "case_events", "case_incidents", "cases", "camera_frames", "report_quarantine", "night_progress", "camera_state")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("template") / "ledger.db"
    Database(f"sqlite:///{path}").dispose()  # the last connection to close checkpoints the WAL into the file
    assert not path.with_name(path.name + "-wal").exists()
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path, sqlite_template) -> str:
    """A migrated, empty ledger database: a fresh SQLite file, or the session's PostgreSQL database truncated."""
    if request.param == "sqlite":
        path = tmp_path / "ledger.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("pg_url")
    with request.getfixturevalue("pg_engine").begin() as conn:  # DELETE: far quicker than TRUNCATE on tiny tables
        for table in TABLES:
            conn.execute(text(f"DELETE FROM {table}"))
    return url


@pytest.fixture(scope="session")
def pg_engine(pg_url):
    db = Database(pg_url, auto_upgrade=False)
    yield db.engine
    db.dispose()


@pytest.fixture
def clock() -> FrameClock:
    return FrameClock(T0)


@pytest.fixture
def make_store(db_url, tmp_path, clock):
    """Build stores on the test database; keyword arguments override LedgerConfig fields."""
    opened: list[CaseStore] = []

    def make(**overrides) -> CaseStore:
        cfg = LedgerConfig(database_url=db_url, evidence_dir=tmp_path / "evidence", **overrides)
        store = CaseStore.open(cfg, clock=clock)
        opened.append(store)
        return store

    yield make
    for s in opened:
        s.close()


@pytest.fixture
def store(make_store) -> CaseStore:
    return make_store()

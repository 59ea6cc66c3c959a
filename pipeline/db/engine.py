"""Engine and transactions for SQLite (embedded) and PostgreSQL (production), with Alembic on open.

SQLite is made safe for several processes: WAL, a busy timeout, foreign keys, and `BEGIN IMMEDIATE` so a
transaction takes the write lock up front instead of failing half-way when another writer commits.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from .storage import storage_error
from .urls import normalize_url, redact

MIGRATIONS = "pipeline.db:migrations"
_PG_MIGRATION_LOCK = 0x5_0E_DB_01  # pg_advisory_lock key: one migrator at a time


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record) -> None:
        dbapi_conn.isolation_level = None  # let SQLAlchemy's "begin" event below issue BEGIN itself
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_ledger_engine(url: str) -> Engine:
    url = normalize_url(url)
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        _sqlite_pragmas(engine)
        return engine
    if u.get_backend_name() != "postgresql":
        raise ValueError(f"unsupported database {redact(url)}: use sqlite:///FILE or postgresql://…")
    # a database host that drops packets must fail a connection attempt in seconds, not a TCP timeout's minutes:
    # the live service posts under its engine lock and queues the reports instead (issue 8)
    connect_args = {} if "connect_timeout" in u.query else {"connect_timeout": 10}
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args)


def alembic_config(connection):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", MIGRATIONS)
    cfg.attributes["connection"] = connection
    return cfg


@functools.cache
def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(None)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate to `revision`. On PostgreSQL an advisory lock keeps two starting processes from racing."""
    from alembic import command

    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            conn.commit()
        try:
            command.upgrade(alembic_config(conn), revision)
            conn.commit()
        finally:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_MIGRATION_LOCK})
                conn.commit()


class Database:
    """One engine and its sessions. `transaction()` is the only way the ledger writes."""

    def __init__(self, url: str, *, auto_upgrade: bool = True):
        self.url = normalize_url(url)
        try:
            self.engine = create_ledger_engine(self.url)
            if auto_upgrade and current_revision(self.engine) != head_revision():
                upgrade(self.engine)
        except (DBAPIError, OSError) as e:
            _raise_storage(self.url, e)
            raise
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session in one transaction: committed when the block ends, rolled back if it raises.

        A database that cannot take the write (disk full, read-only) raises `StorageError`, not a driver error."""
        try:
            with self._sessions() as session, session.begin():
                yield session
        except DBAPIError as e:
            _raise_storage(self.url, e)
            raise

    def dispose(self) -> None:
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"Database({redact(self.url)})"


def _raise_storage(url: str, e: BaseException) -> None:
    """Raise `e` as a StorageError naming the database when it is about storage (full, read-only); else return."""
    err = storage_error("ledger database", redact(url), e)
    if err is not None:
        raise err from e

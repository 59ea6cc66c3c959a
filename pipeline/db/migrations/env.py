"""Alembic environment for the ledger.

The ledger calls Alembic in-process with a connection in `config.attributes["connection"]`. For the alembic
command line (e.g. writing a new revision) the URL comes from `-x db=URL` or $STREETORDER_DB.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from pipeline.config.settings import PipelineSettings
from pipeline.db.tables import Base, UtcDateTime
from pipeline.db.urls import normalize_url

config = context.config
target_metadata = Base.metadata


def _render_item(type_, obj, autogen_context):
    """Write our UtcDateTime as a plain timezone-aware DateTime, so revisions never import the models."""
    if type_ == "type" and isinstance(obj, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _configure(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_item=_render_item,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things in place
    )


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = context.get_x_argument(as_dictionary=True).get("db") or PipelineSettings().db
    if not url:
        raise SystemExit("give the database with -x db=URL or $STREETORDER_DB")
    engine = create_engine(normalize_url(url))
    with engine.connect() as conn:
        _configure(conn)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run against a database")
run_migrations_online()

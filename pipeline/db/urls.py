"""Database URLs as users write them and as SQLAlchemy needs them: one home for the database module and the
storage checks, which both read them."""

from __future__ import annotations

from sqlalchemy.engine import make_url


def normalize_url(url: str) -> str:
    """Accept the usual `postgresql://` spelling and route it to psycopg 3, the driver we ship."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def redact(url: str) -> str:
    return make_url(normalize_url(url)).render_as_string(hide_password=True)

"""What landed in a real ledger database, read straight from its tables (not through the code under test)."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from pipeline.db.urls import normalize_url


def ledger_rows(url: str) -> dict:
    """Incident ids, 'created' events, cases and each camera's last frame time in the database at `url`."""
    engine = create_engine(normalize_url(url))
    with engine.connect() as conn:
        out = {
            "incidents": sorted(conn.execute(text("SELECT incident_id FROM case_incidents")).scalars()),
            "created": conn.execute(text("SELECT count(*) FROM case_events WHERE kind = 'created'")).scalar(),
            "cases": conn.execute(text("SELECT count(*) FROM cases")).scalar(),
            "frames": dict(conn.execute(text("SELECT camera_id, last_frame_at FROM camera_frames")).all()),
        }
    engine.dispose()
    return out

"""GET /quarantine pages like every list: `limit`/`offset` in, `total`, `offset`, `limit` and a `next` link out."""

from __future__ import annotations

from datetime import UTC, datetime

from pipeline.db.quarantine import quarantine


def test_the_quarantine_list_pages_like_every_list(client):
    db = client.app.state.service.store.db
    ids = [quarantine(db, "{}", f"inc-{i}", "cam-1", ValueError(f"refused {i}"), datetime(2026, 11, 21, 9, i, tzinfo=UTC)) for i in range(5)]
    first = client.get("/quarantine", params={"limit": 2}).json()
    assert (first["total"], first["offset"], first["limit"]) == (5, 0, 2) and [q["id"] for q in first["reports"]] == ids[:2]
    assert "offset=2" in first["next"] and "limit=2" in first["next"]
    pages = [first]
    while pages[-1]["next"]:
        pages.append(client.get(pages[-1]["next"]).json())
    assert [q["incident_id"] for p in pages for q in p["reports"]] == [f"inc-{i}" for i in range(5)]  # oldest first, each once
    assert len(pages) == 3 and pages[-1]["offset"] == 4 and pages[-1]["next"] is None
    assert client.get("/quarantine").json() | {"reports": None} == {"total": 5, "offset": 0, "limit": 200, "next": None, "reports": None}
    assert client.get("/quarantine", params={"offset": 100}).json()["reports"] == []
    assert client.get("/quarantine", params={"limit": 0}).status_code == 422 and client.get("/quarantine", params={"offset": -1}).status_code == 422


def test_the_quarantine_list_has_the_envelope_of_the_other_lists(client):
    shape = lambda body: {k for k in body if k in ("total", "offset", "limit", "next")}  # noqa: E731
    assert shape(client.get("/quarantine").json()) == shape(client.get("/models").json()) == {"total", "offset", "limit", "next"}

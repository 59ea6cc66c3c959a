"""The data-loss and out-of-range faults of issue 8, each as a test: a NUL byte on PostgreSQL, a poison report,
frames from the future, frame order across a restart, and dates and ids out of range (422, never 500)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, text

from pipeline.db.urls import normalize_url
from pipeline.domain import IncidentReport, Location
from tests.cases.conftest import TABLES

from .conftest import T0, metric, post_frame


@pytest.fixture
def pg_client(make_client, pg_url):
    """The service on the real PostgreSQL (the session's database, emptied)."""
    engine = create_engine(normalize_url(pg_url))
    with engine.begin() as conn:
        for table in TABLES:
            conn.execute(text(f"DELETE FROM {table}"))
    engine.dispose()
    return make_client(db=pg_url, role=None, insecure_open=True)  # the role keys live in the SQLite ledger


def _photo(client, jpeg: bytes, i: int, **fields):
    at = datetime.now(UTC) - timedelta(minutes=5)
    form = {"lat": f"{31.0 + 0.01 * i:.4f}", "lon": "121.0", "taken_at": at.isoformat(), "district": "黄浦区", "point": f"P{i}"} | fields
    return client.post("/photos", data=form, files={"image": (f"p{i}.jpg", jpeg, "image/jpeg")})


def test_a_nul_byte_in_a_place_field_on_postgresql_is_422_and_blocks_nothing(pg_client, street_jpeg):
    r = _photo(pg_client, street_jpeg, 0, district="a\x00b")
    assert r.status_code == 422, r.text
    [err] = r.json()["detail"]
    assert err["loc"] == ["body", "district"] and "control characters (found U+0000" in err["msg"]
    for i in range(1, 4):  # what came after it is posted, and the service stays ready
        ok = _photo(pg_client, street_jpeg, i)
        assert ok.status_code == 200, ok.text
        assert ok.json()["incidents"][0]["case"]["created"]
    ready = pg_client.get("/ready")
    assert ready.status_code == 200 and ready.json()["backlog"] == 0
    assert pg_client.get("/cases").json()["count"] == 3


def test_a_report_postgresql_refuses_is_quarantined_and_the_queue_behind_it_drains(pg_client, street_jpeg):
    """A poison report already queued (e.g. a journal from before this validation existed): the ledger's
    refusal (a NUL byte PostgreSQL cannot store) quarantines it with the reason; the report behind it posts."""
    state = pg_client.app.state.service
    loc = Location.model_construct(district="a\x00b", street="", point="P", gps=None)  # past the validation, as an old journal line
    at = datetime.now(UTC) - timedelta(minutes=5)
    poison = IncidentReport.model_construct(
        incident_id="patrol-poison", type="garbage", source="patrol", camera_id=None, zone_id=None, location=loc, owner=None,
        first_seen=at, last_seen=at, ended=False, severity=1, count=1, score=0.5, box=None, evidence=[],
    )
    good = IncidentReport(incident_id="patrol-good", type="garbage", source="patrol", location=Location(district="黄浦区", point="P9"), first_seen=at, last_seen=at, score=0.5)
    state.live.intake.queue.add_report(poison)
    state.live.intake.queue.add_report(good)
    state.live.intake.queue.persist()
    assert state.live.retry_queue() == 2
    assert metric(pg_client.get("/metrics").text, "streetorder_cases_created_total", 'source="photo"') == 1  # the retry's case is counted
    [case] = pg_client.get("/cases").json()["cases"]
    assert case["location"]["point"] == "P9"
    quarantine = pg_client.get("/quarantine").json()
    assert quarantine["total"] == 1
    [q] = quarantine["reports"]
    assert q["incident_id"] == "patrol-poison" and q["error_type"] == "DataError" and "NUL" in q["reason"]
    ready = pg_client.get("/ready").json()
    assert ready["ready"] and ready["backlog"] == 0 and ready["quarantined"] == 1
    assert _photo(pg_client, street_jpeg, 5).status_code == 200


def test_a_frame_from_the_future_is_422_never_stored_and_does_not_lock_the_camera(client, street_jpeg):
    future = datetime.now(UTC) + timedelta(hours=1)
    r = post_frame(client, street_jpeg, future)
    assert r.status_code == 422
    assert "ahead of the service's clock" in r.json()["detail"] and "allowed clock skew of 300 s" in r.json()["detail"]
    for value in ("9999-12-31T23:59:59+08:00", "9999-12-31T23:59:59+00:00", "0001-01-01T00:00:00+08:00"):  # 500 OverflowError before
        r = client.post("/frames", data={"camera_id": "cam-1", "taken_at": value}, files={"image": ("f.jpg", street_jpeg, "image/jpeg")})
        assert r.status_code == 422, (value, r.text)
        assert r.json()["detail"][0]["loc"] == ["body", "taken_at"]
    r = post_frame(client, street_jpeg, datetime(1999, 12, 31, 23, 0, tzinfo=UTC))
    assert r.status_code == 422 and "earliest capture time" in r.json()["detail"]
    assert post_frame(client, street_jpeg, T0).status_code == 200  # the camera is not locked
    cams = {c["id"]: c for c in client.get("/cameras").json()["cameras"]}
    assert cams["cam-1"]["last_frame_at"] == T0.isoformat()


@pytest.mark.slow
def test_a_photo_from_the_future_or_year_9999_is_422_not_a_case(client, street_jpeg):
    for value in ((datetime.now(UTC) + timedelta(days=1)).isoformat(), "9999-12-31T23:59:59+00:00", "9000-01-01T00:00:00+08:00"):
        r = _photo(client, street_jpeg, 0, taken_at=value)
        assert r.status_code == 422, (value, r.text)
    assert client.get("/cases").json()["count"] == 0


@pytest.mark.slow
def test_frame_order_survives_a_restart(make_client, street_jpeg):
    client = make_client()
    assert post_frame(client, street_jpeg, T0).status_code == 200
    assert post_frame(client, street_jpeg, T0 + timedelta(seconds=2)).status_code == 200
    client.__exit__(None, None, None)  # stop the service
    client = make_client()  # same ledger, fresh process state
    for at in (T0 + timedelta(seconds=2), T0 + timedelta(seconds=1), T0):
        r = post_frame(client, street_jpeg, at)
        assert r.status_code == 409, (at, r.text)
        assert "already" in r.json()["detail"] or "older than" in r.json()["detail"] or "same time" in r.json()["detail"]
    assert post_frame(client, street_jpeg, T0 + timedelta(seconds=4)).status_code == 200


def test_out_of_range_ids_and_dates_are_422_not_500(client):
    big = 2**63
    assert client.get(f"/cases/{big}").status_code == 422
    assert client.get(f"/cases/{big - 1}").status_code == 404
    assert client.post(f"/cases/{big}/transition", json={"to": "dispatched", "actor": "x"}).status_code == 422
    for action, form in (("dispatch", {"actor": "x"}), ("reject", {"actor": "x", "reason": "y"})):
        r = client.post(f"/review/{big}/{action}", data=form, follow_redirects=False)
        assert r.status_code == 422 and r.headers["content-type"].startswith("application/json"), r.text
    for at in ("0001-01-01T00:00:00+00:00", "0001-01-01T00:00:00+08:00", "9999-12-31T23:59:59-05:00", "0.05"):
        r = client.get("/cases/overdue", params={"at": at})
        assert r.status_code == 422, (at, r.text)
    assert client.get("/cases/overdue", params={"at": "2026-11-21T09:00:00+08:00"}).json()["count"] == 0


def test_a_broken_multipart_body_is_a_documented_422_not_a_400(client):
    r = client.post("/frames", content=b"--x\r\nContent-Disposition: form-data; name=\"camera_id\"\r\n\r\ncam-1", headers={"content-type": "multipart/form-data; boundary=x"})
    assert r.status_code == 422 and "detail" in r.json()

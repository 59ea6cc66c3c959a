"""POST /frames: real detections on a real street photo, through engine and ledger, in frame time."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import cv2
import numpy as np
import pytest

from pipeline.cases.config import AutoVerifyConfig

from .conftest import CST, MOTO, T0, open_case, post_frame


@pytest.fixture(scope="module")
def cleared_jpeg(street_jpeg) -> bytes:
    """The same street with the motorbike in the no_parking zone painted over: the spot is clear."""
    image = cv2.imdecode(np.frombuffer(street_jpeg, np.uint8), cv2.IMREAD_COLOR)
    x1, y1, x2, y2 = (int(v) for v in MOTO)
    image[y1 - 20 : y2 + 20, x1 - 20 : x2 + 20] = (128, 128, 128)
    return cv2.imencode(".jpg", image)[1].tobytes()


def test_two_frames_open_a_case_committed_before_the_answer(client, street_jpeg, tmp_path):
    body = open_case(client, street_jpeg)
    assert body["camera_id"] == "cam-1" and body["model"] == "coco" and (body["width"], body["height"]) == (640, 640)
    assert [v["zone_id"] for v in body["violations"]] == ["np"]
    incident = body["incidents"][0]
    assert incident["type"] == "non_motor_parking" and incident["location"]["point"] == "学校东门" and incident["owner"] == "李娜"
    assert incident["case"]["created"] and incident["case"]["status"] == "detected"
    assert {e["kind"] for e in incident["evidence"]} == {"best_frame", "crop", "context", "metadata"}
    assert all(e["url"].endswith("/evidence/" + e["sha256"]) for e in incident["evidence"])
    assert all(client.app.state.service.store.evidence.exists(e["sha256"]) for e in incident["evidence"])
    assert [p for p in (tmp_path / "engine-evidence").rglob("*") if p.is_file()] == []  # the engine's copies are gone
    case = client.get(f"/cases/{incident['case']['case_id']}").json()  # committed: visible to the next request
    assert case["incident_ids"] == [incident["incident_id"]]
    assert case["box"] == pytest.approx(list(MOTO), abs=0.2)
    moto = [d for d in body["detections"] if d["box"] == pytest.approx(list(MOTO), abs=0.2)]
    assert moto and moto[0]["class_name"] == "motorcycle" and moto[0]["track_id"] is not None


def test_frames_of_a_camera_must_come_in_time_order_each_once(client, street_jpeg):
    assert post_frame(client, street_jpeg, T0).status_code == 200
    again = post_frame(client, street_jpeg, T0)
    assert again.status_code == 409 and "the same time as" in again.json()["detail"]
    older = post_frame(client, street_jpeg, T0 - timedelta(seconds=1))
    assert older.status_code == 409 and "older than" in older.json()["detail"]
    assert post_frame(client, street_jpeg, T0 - timedelta(seconds=1), camera_id="cam-2").status_code == 200  # cameras are independent
    same_instant_in_utc = post_frame(client, street_jpeg, T0.astimezone(timezone.utc))
    assert same_instant_in_utc.status_code == 409


def test_unknown_camera_is_404_and_names_the_known_ones(client, street_jpeg):
    r = post_frame(client, street_jpeg, T0, camera_id="cam-9")
    assert r.status_code == 404
    assert "cam-1, cam-2" in r.json()["detail"]


def test_without_a_model_frames_are_503_and_ready_says_why(make_client, street_jpeg):
    client = make_client(model="does-not-exist")
    r = post_frame(client, street_jpeg, T0)
    assert r.status_code == 503 and "PUT /models/current" in r.json()["detail"]
    ready = client.get("/ready")
    assert ready.status_code == 503 and "does-not-exist" in ready.json()["model_error"]


@pytest.mark.slow
def test_a_dispatched_case_is_auto_verified_once_its_spot_stays_clear(make_client, street_jpeg, cleared_jpeg):
    client = make_client(ledger_update={"autoverify": AutoVerifyConfig(gone_for_s=4, max_frame_gap_s=60)})
    start = datetime.now(CST).replace(microsecond=0)  # live: the dispatch below is stamped with the wall clock
    case_id = open_case(client, street_jpeg, start)["incidents"][0]["case"]["case_id"]
    assert client.post(f"/cases/{case_id}/transition", json={"to": "dispatched"}).status_code == 200
    actions = []
    for i in range(3):
        r = post_frame(client, cleared_jpeg, start + timedelta(minutes=1, seconds=2 * i))
        assert r.status_code == 200, r.text
        actions += r.json()["verified"]
    assert [a["action"] for a in actions] == ["verified"] and actions[0]["case_id"] == case_id
    case = client.get(f"/cases/{case_id}").json()
    assert case["status"] == "verified"
    after = [e for e in case["evidence"] if e["kind"] == "after"]
    assert after and after[0]["sha256"] == actions[0]["after_image_sha256"]


def test_when_the_ledger_fails_the_frame_is_202_and_its_reports_are_posted_with_the_next(make_client, street_jpeg, monkeypatch):
    from sqlalchemy.exc import OperationalError

    client = make_client(retry_interval_s=3600)  # no background retry: the next frame posts the backlog
    store = client.app.state.service.store
    assert post_frame(client, street_jpeg, T0).status_code == 200
    down = lambda r, **kw: (_ for _ in ()).throw(OperationalError("INSERT", {}, ConnectionError("down")))  # noqa: E731
    monkeypatch.setattr(store, "post_incident", down)
    monkeypatch.setattr(store, "post_incidents", down)  # a frame's reports go with its frame time and camera state
    failed = post_frame(client, street_jpeg, T0 + timedelta(seconds=2))  # the incident opens on this frame
    assert failed.status_code == 202 and "do not resend" in failed.json()["detail"] and failed.json()["queued"] == 1
    ready = client.get("/ready")
    assert ready.status_code == 503 and ready.json()["backlog"] == 1 and "OperationalError" in ready.json()["backlog_error"]
    monkeypatch.undo()
    assert post_frame(client, street_jpeg, T0 + timedelta(seconds=2)).status_code == 409  # a resend is refused, not doubled
    later = post_frame(client, street_jpeg, T0 + timedelta(seconds=4)).json()
    [retried] = later["retried"]
    assert retried["incident_id"] == "cam-1-non_motor_parking-np-20261121T090000" and retried["case"]["created"]
    assert client.get("/cases").json()["count"] == 1 and client.get("/ready").json()["backlog"] == 0

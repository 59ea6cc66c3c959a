"""The camera config over HTTP: its summary, reload errors, and fixtures that take effect on the next frame."""

from __future__ import annotations

from datetime import timedelta

import yaml

from .conftest import MOTO, T0, post_frame


def moto_seen(frame_body: dict) -> bool:
    return any(d["class_name"] == "motorcycle" and abs(d["box"][0] - MOTO[0]) < 2 and abs(d["box"][3] - MOTO[3]) < 2 for d in frame_body["detections"])


def test_summary(client, street_jpeg, camera_config):
    post_frame(client, street_jpeg, T0)
    body = client.get("/cameras").json()
    assert body["config_path"] == str(camera_config) and body["config_error"] is None and body["config_version"] == 1
    assert body["fixtures_file"] == str(camera_config.parent / "fixtures.yaml")
    cam = body["cameras"][0]
    assert (cam["id"], cam["owner"], cam["resolution"]) == ("cam-1", "李娜", [640, 640])
    assert cam["zones"] == [{"id": "np", "kind": "no_parking", "point": None, "scheduled": False}]
    assert cam["last_frame_at"] == "2026-11-21T09:00:00+08:00" and body["cameras"][1]["last_frame_at"] is None


def test_a_fixture_added_through_the_api_suppresses_the_next_frame_at_that_spot(client, street_jpeg, camera_config):
    first = post_frame(client, street_jpeg, T0).json()
    assert moto_seen(first)
    r = client.post("/cameras/cam-1/fixtures", json={"box": list(MOTO), "classes": ["motorcycle"], "reason": "bike rack: parking allowed here"})
    assert r.status_code == 201, r.text
    fixture = r.json()
    assert fixture["id"].startswith("api-") and fixture["classes"] == ["motorcycle"]
    stored = yaml.safe_load((camera_config.parent / "fixtures.yaml").read_text(encoding="utf-8"))
    assert [f["id"] for f in stored["cam-1"]] == [fixture["id"]]
    for i in (1, 2, 3):  # without the fixture the second frame would open a case (see test_frames)
        body = post_frame(client, street_jpeg, T0 + timedelta(seconds=2 * i)).json()
        assert not moto_seen(body) and body["violations"] == [] and body["incidents"] == []
    assert any(d["class_name"] == "motorcycle" for d in body["detections"])  # only the one at the fixture is gone
    assert client.get("/cameras").json()["cameras"][0]["fixtures"][0]["id"] == fixture["id"]
    assert client.get("/cases").json()["count"] == 0


def test_fixture_refusals(client, tmp_path):
    ok = {"box": [10, 10, 50, 50], "reason": "kiosk"}
    assert client.post("/cameras/cam-9/fixtures", json=ok).status_code == 404
    outside = client.post("/cameras/cam-1/fixtures", json=ok | {"box": [600, 600, 700, 700]})
    assert outside.status_code == 422 and "outside the frame" in outside.json()["detail"]
    assert client.post("/cameras/cam-1/fixtures", json=ok | {"box": [50, 50, 10, 10]}).status_code == 422
    assert client.post("/cameras/cam-1/fixtures", json={"box": [10, 10, 50, 50]}).status_code == 422  # reason required
    assert client.post("/cameras/cam-1/fixtures", json=ok | {"id": "k1"}).status_code == 201
    assert client.post("/cameras/cam-1/fixtures", json=ok | {"id": "k1"}).status_code == 409
    assert client.get("/cameras").json()["config_error"] is None  # nothing bad reached the file


def test_a_config_without_fixtures_file_says_how_to_add_one(make_client, camera_config):
    data = yaml.safe_load(camera_config.read_text(encoding="utf-8"))
    del data["fixtures_file"]
    camera_config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    r = make_client().post("/cameras/cam-1/fixtures", json={"box": [10, 10, 50, 50], "reason": "kiosk"})
    assert r.status_code == 409 and "fixtures_file: fixtures.yaml" in r.json()["detail"]


def test_a_broken_config_edit_is_reported_and_the_last_good_one_keeps_serving(client, street_jpeg, camera_config):
    good = camera_config.read_text(encoding="utf-8")
    camera_config.write_text(good.replace("no_parking", "no_such_kind"), encoding="utf-8")
    body = client.get("/cameras").json()
    assert "zones[0].kind" in body["config_error"] and body["config_version"] == 1
    assert client.get("/ready").json()["config_error"] == body["config_error"]
    assert post_frame(client, street_jpeg, T0).status_code == 200
    second = post_frame(client, street_jpeg, T0 + timedelta(seconds=2)).json()
    assert [v["zone_id"] for v in second["violations"]] == ["np"]  # still the last good zones
    camera_config.write_text(good.replace("min_dwell_s: 2", "min_dwell_s: 3"), encoding="utf-8")
    fixed = client.get("/cameras").json()
    assert fixed["config_error"] is None and fixed["config_version"] == 2


def test_fixtures_are_listed_per_camera_edited_in_place_and_removed(client, street_jpeg, camera_config):
    data = yaml.safe_load(camera_config.read_text(encoding="utf-8"))
    data["cameras"][0]["fixtures"] = [{"id": "kiosk", "box": [0, 0, 40, 40], "reason": "permitted kiosk"}]
    camera_config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    rack = {"box": list(MOTO), "classes": ["motorcycle"], "reason": "bike rack"}
    assert client.post("/cameras/cam-1/fixtures", json=rack | {"id": "rack"}).status_code == 201
    again = client.post("/cameras/cam-1/fixtures", json=rack | {"reason": "the same rack, posted twice"})
    assert again.status_code == 409 and "'rack'" in again.json()["detail"]  # no duplicates, whatever the id
    for i in range(3):
        assert client.post("/cameras/cam-1/fixtures", json={"box": [100 + i, 0, 140 + i, 40], "reason": f"bin {i}", "id": f"bin-{i}"}).status_code == 201
    listed = client.get("/cameras/cam-1/fixtures", params={"limit": 2}).json()
    assert [f["id"] for f in listed["fixtures"]] == ["kiosk", "rack"] and listed["total"] == 5
    assert [f["editable"] for f in listed["fixtures"]] == [False, True]
    assert [f["id"] for f in client.get(listed["next"]).json()["fixtures"]] == ["bin-0", "bin-1"]
    assert client.get("/cameras/cam-2/fixtures").json() == {"camera_id": "cam-2", "fixtures": [], "total": 0, "offset": 0, "limit": 200, "next": None}
    assert client.get("/cameras/cam-9/fixtures").status_code == 404

    # edit: the id stays, the box moves; the next frame sees the moved fixture, so the motorbike is back
    assert moto_seen(post_frame(client, street_jpeg, T0).json()) is False
    moved = client.put("/cameras/cam-1/fixtures/rack", json={"box": [500, 500, 600, 600], "classes": ["motorcycle"], "reason": "rack moved"})
    assert moved.status_code == 200 and moved.json()["id"] == "rack" and moved.json()["box"] == [500, 500, 600, 600]
    assert moto_seen(post_frame(client, street_jpeg, T0 + timedelta(seconds=2)).json())
    assert client.put("/cameras/cam-1/fixtures/rack", json={"box": [600, 600, 700, 700], "reason": "x"}).status_code == 422  # outside the frame
    assert client.put("/cameras/cam-1/fixtures/kiosk", json={"box": [0, 0, 50, 50], "reason": "x"}).status_code == 409  # hand-written
    assert client.put("/cameras/cam-1/fixtures/nope", json={"box": [0, 0, 50, 50], "reason": "x"}).status_code == 404

    gone = client.delete("/cameras/cam-1/fixtures/bin-1")
    assert gone.status_code == 200 and gone.json()["reason"] == "bin 1"
    assert client.delete("/cameras/cam-1/fixtures/bin-1").status_code == 404
    assert client.delete("/cameras/cam-1/fixtures/kiosk").status_code == 409
    stored = yaml.safe_load((camera_config.parent / "fixtures.yaml").read_text(encoding="utf-8"))
    assert [f["id"] for f in stored["cam-1"]] == ["rack", "bin-0", "bin-2"] and stored["cam-1"][0]["reason"] == "rack moved"
    assert [f["id"] for f in client.get("/cameras/cam-1/fixtures").json()["fixtures"]] == ["kiosk", "rack", "bin-0", "bin-2"]
    assert client.get("/cameras").json()["config_error"] is None


def test_a_camera_added_while_serving_is_warmed_before_its_first_frame(make_client, camera_config, caplog):
    """A config edit that adds a camera builds its input shapes on a thread of its own once the service notices
    the edit (here: a /ready probe), before the camera sends anything (`ServiceState.warm_up_cameras`)."""
    import logging
    import time

    caplog.set_level(logging.INFO, logger="pipeline.detect.warm_up")
    client = make_client()
    assert "warm-up: 1 plan(s) for 2 camera(s)" in caplog.text  # at the start
    data = yaml.safe_load(camera_config.read_text(encoding="utf-8"))
    data["cameras"].append({"id": "cam-3", "location": {"district": "西湖区", "point": "P3"}, "resolution": [1920, 1080]})
    camera_config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    assert client.get("/ready").status_code == 200
    deadline = time.monotonic() + 60
    while "for 3 camera(s)" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "warm-up: 2 plan(s) for 3 camera(s)" in caplog.text
    assert client.get("/cameras").json()["config_version"] == 2

    assert make_client(warm_up_s=0).app.state.service.cameras.on_change is None

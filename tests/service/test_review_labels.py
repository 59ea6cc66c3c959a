"""The review page's box editor: the frame with every box the model found, saving a label set (a new
annotation each time, with the reviewer and the time), clear refusals, and decisions logged beside it."""

from __future__ import annotations

import json
import re
from datetime import timedelta

from pipeline.cases.annotations import Annotations

from service.http.keys import Role

from ..cases.factory import joining_frame
from .conftest import MOTO, T0, key_of, open_case, without_key


def _frame(client, case_id):
    r = client.get(f"/review/{case_id}/boxes")
    assert r.status_code == 200, r.text
    return r.json()


def test_the_editor_shows_the_frame_with_every_model_box(client, street_jpeg):
    case_id = open_case(client, street_jpeg)["incidents"][0]["case"]["case_id"]
    assert f"/review/{case_id}/label" in client.get("/review").text
    frame = _frame(client, case_id)
    assert (frame["width"], frame["height"], frame["model"]) == (640, 640, "coco")
    assert len(frame["proposals"]) > len(frame["violation"]) == 1  # the whole frame's objects, not only the violation's
    moto = frame["proposals"][frame["violation"][0]]
    assert moto["class_name"] == "motorcycle" and all(abs(a - b) < 2 for a, b in zip(moto["box"], MOTO))
    assert frame["boxes"] == frame["proposals"] and frame["saved"] is None and "garbage_bin" in frame["classes"]
    page = client.get(f"/review/{case_id}/label")
    assert page.status_code == 200 and 'id="editor"' in page.text and f"/evidence/{frame['frame_sha256']}" in page.text
    data = json.loads(re.search(r'<script id="frame-data" type="application/json">(.*?)</script>', page.text, re.S).group(1))
    assert data["proposals"] == frame["proposals"]
    assert all(u.startswith("http://testserver/") for u in re.findall(r'(?:src|href|action)="([^"]+)"', page.text))  # nothing from a CDN


def test_saving_boxes_adds_an_annotation_and_keeps_the_history(client, street_jpeg):
    case_id = open_case(client, street_jpeg)["incidents"][0]["case"]["case_id"]
    frame = _frame(client, case_id)
    moved = dict(frame["boxes"][0], box=[b + 3 for b in frame["boxes"][0]["box"]], origin="edited")
    drawn = {"class_name": "garbage_bin", "box": [10, 20, 60, 90], "origin": "drawn"}
    reviewer = key_of(client, Role.REVIEWER)  # who saves is the key's (or the session's) name, never a name sent
    r = client.post(f"/review/{case_id}/boxes", json={"frame_sha256": frame["frame_sha256"], "boxes": [moved, drawn], "negatives": frame["boxes"][1:2]}, headers=reviewer)
    assert r.status_code == 201, r.text
    assert r.json()["reviewer"] == "王审核" and r.json()["action"] == "boxes" and r.json()["model"] == "coco"
    again = client.post(f"/review/{case_id}/boxes", json={"reviewer": "李审核", "frame_sha256": frame["frame_sha256"], "boxes": [drawn]})  # the admin's key; a sent name is ignored
    assert again.status_code == 201
    now = _frame(client, case_id)
    assert [b["class_name"] for b in now["boxes"]] == ["garbage_bin"] and now["saved"]["reviewer"] == "ops-admin"
    assert [h["reviewer"] for h in now["history"]] == ["王审核", "ops-admin"]  # the first save is kept, never overwritten
    assert "王审核 · boxes (2 boxes) · review-page" in client.get(f"/review/{case_id}/label").text  # the page shows the history too
    # a decision later is logged too, and changes none of the boxes
    assert client.post(f"/review/{case_id}/dispatch", data={"owner": "张三"}, headers=reviewer, follow_redirects=False).status_code == 303
    history = Annotations(client.app.state.service.store.db).history(case_id)
    assert [(h.action, h.source) for h in history] == [("boxes", "review-page"), ("boxes", "review-page"), ("dispatch", "review-page")]
    assert history[-1].event_id is not None and history[-1].frame_sha256 == frame["frame_sha256"]
    assert _frame(client, case_id)["boxes"] == now["boxes"]


def test_bad_label_sets_are_refused_with_the_reason(client, street_jpeg, tmp_path):
    case_id = open_case(client, street_jpeg)["incidents"][0]["case"]["case_id"]
    sha = _frame(client, case_id)["frame_sha256"]
    box = {"class_name": "person", "box": [10, 10, 50, 50]}
    cases = [
        ({"frame_sha256": sha, "boxes": [dict(box, class_name="unicorn")]}, "unknown class 'unicorn'"),
        ({"frame_sha256": sha, "boxes": [dict(box, box=[10, 10, 900, 50])]}, "leaves the 640x640 frame"),
        ({"frame_sha256": sha, "boxes": [dict(box, box=[50, 10, 10, 50])]}, "x2 > x1"),
        ({"boxes": [box]}, "frame_sha256"),  # which frame the boxes were drawn on is not optional
    ]
    for body, reason in cases:
        r = client.post(f"/review/{case_id}/boxes", json=body)
        assert r.status_code == 422 and reason in json.dumps(r.json()["detail"]), (body, r.text)
    assert client.post("/review/999/boxes", json={"frame_sha256": sha, "boxes": []}).status_code == 404
    r = client.post(f"/review/{case_id}/boxes", json={"frame_sha256": "0" * 64, "boxes": [box]})
    assert r.status_code == 409 and "is not a frame of case" in r.json()["detail"]
    assert Annotations(client.app.state.service.store.db).history(case_id) == []


def test_the_editor_needs_a_reviewer_session_or_key(client, street_jpeg):
    case_id = open_case(client, street_jpeg)["incidents"][0]["case"]["case_id"]
    with without_key(client):
        assert client.get(f"/review/{case_id}/label").status_code == 401
        assert client.get(f"/review/{case_id}/boxes").status_code == 401
        assert client.post(f"/review/{case_id}/boxes", json={"frame_sha256": "0" * 64, "boxes": []}).status_code == 401
        assert client.get(f"/review/{case_id}/boxes", headers=key_of(client, Role.CAMERA)).status_code == 403
        client.post("/review/login", data={"key": client.keys[Role.REVIEWER]})
        assert client.get(f"/review/{case_id}/label").status_code == 200 and client.get(f"/review/{case_id}/boxes").status_code == 200
        saved = client.post(f"/review/{case_id}/boxes", json={"frame_sha256": _frame(client, case_id)["frame_sha256"], "boxes": []})
        assert saved.status_code == 201 and saved.json()["reviewer"] == "王审核"  # the session's reviewer


def test_saved_boxes_stay_on_their_frame_when_the_case_gets_a_newer_one(client, street_jpeg, tmp_path):
    case_id = open_case(client, street_jpeg)["incidents"][0]["case"]["case_id"]
    store = client.app.state.service.store
    first = _frame(client, case_id)
    drawn = {"class_name": "garbage_bin", "box": [10, 20, 60, 90], "origin": "drawn"}
    assert client.post(f"/review/{case_id}/boxes", json={"frame_sha256": first["frame_sha256"], "boxes": [drawn]}).status_code == 201
    later = store.post_incident(joining_frame(tmp_path, store.get(case_id), "later-report", T0 + timedelta(minutes=5)))
    assert later.case_id == case_id and later.merged

    now = _frame(client, case_id)  # the editor opens on the frame that was labelled, not the newer one
    assert now["frame_sha256"] == first["frame_sha256"] and now["saved"]["boxes"][0]["class_name"] == "garbage_bin"
    assert [f["labelled"] for f in now["frames"]] == [True, False]
    newer = now["frames"][1]["frame_sha256"]
    other = client.get(f"/review/{case_id}/boxes", params={"frame": newer}).json()
    assert other["saved"] is None and other["model"] == "newer-model" and [b["class_name"] for b in other["boxes"]] == ["motorcycle", "person"]
    assert f"?frame={newer}" in client.get(f"/review/{case_id}/label").text  # the page links the other frame
    # boxes go to the frame they were drawn on, whichever is the latest
    assert client.post(f"/review/{case_id}/boxes", json={"frame_sha256": first["frame_sha256"], "boxes": [drawn, drawn]}).status_code == 201
    assert client.post(f"/review/{case_id}/boxes", json={"frame_sha256": newer, "boxes": []}).status_code == 201
    log = Annotations(store.db)
    assert len(log.latest_boxes(case_id, first["frame_sha256"]).boxes) == 2 and log.latest_boxes(case_id, newer).boxes == ()


def test_a_decision_through_the_cases_api_is_logged_with_the_transition(client, street_jpeg):
    case_id = open_case(client, street_jpeg)["incidents"][0]["case"]["case_id"]
    r = client.post(f"/cases/{case_id}/transition", json={"to": "dispatched", "owner": "张三"}, headers=key_of(client, Role.REVIEWER))
    assert r.status_code == 200, r.text
    [row] = Annotations(client.app.state.service.store.db).history(case_id)
    assert (row.action, row.reviewer, row.source, row.event_id) == ("dispatch", "王审核", "api", r.json()["history"][-1]["id"])
    assert row.frame_sha256 == _frame(client, case_id)["frame_sha256"] and row.model == "coco"

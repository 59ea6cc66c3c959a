"""The review page's box editor: the frame with every box the model found, saving a label set (a new
annotation each time, with the reviewer and the time), clear refusals, and decisions logged beside it."""

from __future__ import annotations

import json
import re

from pipeline.cases.annotations import Annotations

from service.keys import Role

from .conftest import MOTO, key_of, open_case, without_key


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
    r = client.post(f"/review/{case_id}/boxes", json={"boxes": [moved, drawn], "negatives": frame["boxes"][1:2]}, headers=reviewer)
    assert r.status_code == 201, r.text
    assert r.json()["reviewer"] == "王审核" and r.json()["action"] == "boxes" and r.json()["model"] == "coco"
    again = client.post(f"/review/{case_id}/boxes", json={"reviewer": "李审核", "boxes": [drawn]})  # the admin's key; a sent name is ignored
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
    box = {"class_name": "person", "box": [10, 10, 50, 50]}
    cases = [
        ({"boxes": [dict(box, class_name="unicorn")]}, "unknown class 'unicorn'"),
        ({"boxes": [dict(box, box=[10, 10, 900, 50])]}, "leaves the 640x640 frame"),
        ({"boxes": [dict(box, box=[50, 10, 10, 50])]}, "x2 > x1"),
    ]
    for body, reason in cases:
        r = client.post(f"/review/{case_id}/boxes", json=body)
        assert r.status_code == 422 and reason in json.dumps(r.json()["detail"]), (body, r.text)
    assert client.post("/review/999/boxes", json={"boxes": []}).status_code == 404
    assert Annotations(client.app.state.service.store.db).history(case_id) == []


def test_the_editor_needs_a_reviewer_session_or_key(client, street_jpeg):
    case_id = open_case(client, street_jpeg)["incidents"][0]["case"]["case_id"]
    with without_key(client):
        assert client.get(f"/review/{case_id}/label").status_code == 401
        assert client.get(f"/review/{case_id}/boxes").status_code == 401
        assert client.post(f"/review/{case_id}/boxes", json={"boxes": []}).status_code == 401
        assert client.get(f"/review/{case_id}/boxes", headers=key_of(client, Role.CAMERA)).status_code == 403
        client.post("/review/login", data={"key": client.keys[Role.REVIEWER]})
        assert client.get(f"/review/{case_id}/label").status_code == 200 and client.get(f"/review/{case_id}/boxes").status_code == 200
        saved = client.post(f"/review/{case_id}/boxes", json={"boxes": []})
        assert saved.status_code == 201 and saved.json()["reviewer"] == "王审核"  # the session's reviewer

"""Review at speed: the owner (点位长) is prefilled from the camera config, and the selected cases are dispatched
or rejected in one post through the same decisions as the single forms."""

from __future__ import annotations

import re
from html import unescape

from pipeline.cases.annotations import Annotations
from service.http.keys import Role
from tests.cases.factory import incident

from .conftest import without_key


def _post(client, tmp_path, name, **kw):
    return client.app.state.service.store.post_incident(incident(tmp_path / "in", name, **kw)).case_id


def _owner_field(html: str, case_id: int) -> str:
    row = html[html.index(f'id="case-{case_id}"'):]
    return unescape(re.search(r'name="owner" value="([^"]*)"', row).group(1))


def test_owner_is_prefilled_from_the_camera_or_the_point(client, tmp_path):
    patrol = _post(client, tmp_path, "p", camera_id=None, owner=None, district="拱墅区", point="学校东门", gps=(30.2936, 120.1614))  # cam-1's point, owner 李娜
    camera = _post(client, tmp_path, "c", camera_id="cam-1", owner=None, district="拱墅区", point="学校东门")
    own = _post(client, tmp_path, "o", camera_id="cam-1", owner="王五")
    nobody = _post(client, tmp_path, "n", camera_id=None, owner=None, district="上城区", point="GPS 30.1,120.1")
    html = client.get("/review").text
    assert [_owner_field(html, i) for i in (patrol, camera, own, nobody)] == ["李娜", "李娜", "王五", ""]
    assert 'value="李娜"' in client.get(f"/review/{patrol}/label").text  # the editor's dispatch form too
    r = client.post(f"/review/{patrol}/dispatch", data={"owner": ""}, follow_redirects=False)  # an empty owner: the point's
    assert r.status_code == 303 and client.get(f"/cases/{patrol}").json()["owner"] == "李娜"


def test_bulk_dispatch_sends_each_case_to_its_owner_and_reports_the_refused(client, tmp_path):
    a = _post(client, tmp_path, "a", camera_id=None, owner=None, district="拱墅区", point="学校东门")
    b = _post(client, tmp_path, "b", owner="赵六", point="P-b")
    c = _post(client, tmp_path, "c", camera_id=None, owner=None, district="上城区", point="nowhere")  # no owner anywhere
    r = client.post("/review/bulk", data={"case_id": [a, b], "action": "dispatch"}, follow_redirects=False)
    assert r.status_code == 303
    assert "2 case(s) dispatched" in client.get(r.headers["location"]).text
    store = client.app.state.service.store
    assert (store.get(a).status, store.get(a).owner, store.get(b).owner) == ("dispatched", "李娜", "赵六")
    assert store.get(a).history[-1].actor == "ops-admin" and [x.source for x in Annotations(store.db).history(a)] == ["review-page"]
    d = _post(client, tmp_path, "d", owner="钱七", point="P-d")
    r = client.post("/review/bulk", data={"case_id": [c, d], "action": "dispatch"})
    assert r.status_code == 409 and "1 of 2 refused" in r.text and f"case {c}: cannot move" in r.text and "dispatching needs a point owner" in r.text and "1 case(s) dispatched" in r.text
    assert store.get(c).status == "detected" and store.get(d).status == "dispatched"  # one refusal does not stop the others


def test_bulk_reject_needs_a_reason_and_rejects_all(client, tmp_path):
    ids = [_post(client, tmp_path, n, point=f"P-{n}") for n in "xyz"]
    r = client.post("/review/bulk", data={"case_id": ids[:2], "action": "reject", "reason": ""})
    assert r.status_code == 409 and "2 of 2 refused" in r.text and "reason" in r.text
    r = client.post("/review/bulk", data={"case_id": ids[:2], "action": "reject", "reason": "店家桌椅"}, follow_redirects=False)
    assert r.status_code == 303
    store = client.app.state.service.store
    assert [store.get(i).status for i in ids] == ["rejected", "rejected", "detected"]
    assert store.get(ids[0]).reject_reason == "店家桌椅"


def test_bulk_refuses_bad_forms_and_other_origins(client, tmp_path):
    a = _post(client, tmp_path, "a")
    assert client.post("/review/bulk", data={"action": "dispatch"}).status_code == 422  # nothing selected
    assert client.post("/review/bulk", data={"case_id": [a], "action": "burn"}).status_code == 422
    assert client.post("/review/bulk", data={"case_id": list(range(1, 203)), "action": "reject", "reason": "x"}).status_code == 422
    assert client.post("/review/bulk", data={"case_id": ["abc"], "action": "reject"}).status_code == 422
    assert client.post("/review/bulk", data={"case_id": [a], "action": "reject", "reason": "bollard\u202e"}).status_code == 422  # as single reject
    assert client.post("/review/bulk", data={"case_id": [a], "action": "dispatch", "type": "graffiti"}).status_code == 422  # as single dispatch
    assert client.app.state.service.store.get(a).status == "detected"
    with without_key(client):  # a browser: the session cookie, and the page's origin or another's
        assert client.post("/review/login", data={"key": client.keys[Role.REVIEWER]}, follow_redirects=False).status_code == 303
        r = client.post("/review/bulk", data={"case_id": [a], "action": "reject", "reason": "x"}, headers={"Origin": "http://evil.example"})
        assert r.status_code == 403 and client.app.state.service.store.get(a).status == "detected"
        r = client.post("/review/bulk", data={"case_id": [a], "action": "reject", "reason": "x"}, follow_redirects=False)
        assert r.status_code == 303 and client.app.state.service.store.get(a).history[-1].actor == "王审核"

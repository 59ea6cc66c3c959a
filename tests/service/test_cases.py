"""The ledger over HTTP: filters, lookups, transitions and their refusals, rectification with an after photo."""

from __future__ import annotations

import hashlib

import pytest

from tests.cases.factory import incident

from .conftest import STREET


@pytest.fixture
def seeded(client, tmp_path):
    """Three cases posted straight into the ledger: two vending (two districts), one garbage."""
    store = client.app.state.service.store
    ids = [
        store.post_incident(incident(tmp_path / "in", "inc-a", point="P-1", district="黄浦区")).case_id,
        store.post_incident(incident(tmp_path / "in", "inc-b", point="P-2", district="静安区")).case_id,
        store.post_incident(incident(tmp_path / "in", "inc-c", type="garbage", point="P-3", district="黄浦区", owner=None)).case_id,
    ]
    return client, ids


def test_list_filters_and_get(seeded):
    client, (a, b, c) = seeded
    assert client.get("/cases").json()["count"] == 3
    assert [x["id"] for x in client.get("/cases", params={"district": "黄浦区"}).json()["cases"]] == [a, c]
    assert [x["id"] for x in client.get("/cases", params={"type": "garbage"}).json()["cases"]] == [c]
    assert [x["id"] for x in client.get("/cases", params={"status": "detected", "limit": 1}).json()["cases"]] == [a]
    case = client.get(f"/cases/{b}").json()
    assert case["location"]["district"] == "静安区" and case["incident_ids"] == ["inc-b"] and case["history"][0]["kind"] == "created"


def test_bad_filters_and_unknown_case(seeded):
    client, _ = seeded
    assert client.get("/cases", params={"status": "done"}).status_code == 422
    assert client.get("/cases", params={"type": "graffiti"}).status_code == 422
    r = client.get("/cases/4242")
    assert r.status_code == 404 and r.json()["detail"] == "no case with id 4242"
    assert client.get("/cases/zero").status_code == 422


def test_transitions_and_their_refusals(seeded):
    client, (a, b, c) = seeded
    r = client.post(f"/cases/{a}/transition", json={"to": "dispatched", "owner": "张三"})
    assert r.status_code == 200
    assert r.json()["status"] == "dispatched" and r.json()["owner"] == "张三" and r.json()["deadline_at"]
    assert r.json()["history"][-1]["actor"] == "ops-admin"  # the calling key's name, not a field of the request
    skip = client.post(f"/cases/{b}/transition", json={"to": "verified"})
    assert skip.status_code == 409
    assert skip.json()["detail"] == f"case {b}: cannot move from 'detected' to 'verified': from 'detected' the case can only move to: dispatched, rejected"
    no_reason = client.post(f"/cases/{b}/transition", json={"to": "rejected"})
    assert no_reason.status_code == 409 and "reason" in no_reason.json()["detail"]
    no_owner = client.post(f"/cases/{c}/transition", json={"to": "dispatched"})
    assert no_owner.status_code == 409 and "point owner" in no_owner.json()["detail"]
    assert client.post("/cases/999/transition", json={"to": "rejected", "note": "n"}).status_code == 404
    assert client.post(f"/cases/{b}/transition", json={"to": "gone"}).status_code == 422
    old_client = client.post(f"/cases/{b}/transition", json={"to": "rejected", "note": "n", "actor": "anyone"})  # deprecated field: accepted
    assert old_client.status_code == 200 and old_client.json()["history"][-1]["actor"] == "ops-admin"  # and ignored: the key says who
    field = client.get("/openapi.json").json()["components"]["schemas"]["TransitionIn"]["properties"]["actor"]
    assert field["deprecated"] is True and "ignored" in field["description"]
    assert client.post(f"/cases/{b}/transition", json={"to": "rejected", "note": "n", "extra": 1}).status_code == 422


def test_rectify_with_an_after_photo_stores_it_as_evidence(seeded):
    client, (a, _, _) = seeded
    client.post(f"/cases/{a}/transition", json={"to": "dispatched"})
    photo = STREET.read_bytes()
    r = client.post(f"/cases/{a}/rectify", data={"note": "清理完毕"}, files={"photo": ("after.jpg", photo, "image/jpeg")})
    assert r.status_code == 200, r.text
    after = [e for e in r.json()["evidence"] if e["kind"] == "after"]
    assert [e["sha256"] for e in after] == [hashlib.sha256(photo).hexdigest()]
    again = client.post(f"/cases/{a}/rectify", data={}, files={"photo": ("after.jpg", photo, "image/jpeg")})
    assert again.status_code == 409  # already rectified


def test_rectify_refuses_a_broken_photo_before_touching_the_case(seeded):
    client, (a, _, _) = seeded
    client.post(f"/cases/{a}/transition", json={"to": "dispatched"})
    r = client.post(f"/cases/{a}/rectify", data={}, files={"photo": ("after.jpg", b"\xff\xd8\xff\xe0 broken", "image/jpeg")})
    assert r.status_code == 422
    assert client.get(f"/cases/{a}").json()["status"] == "dispatched"


def test_overdue_lists_dispatched_cases_past_their_deadline(seeded):
    client, (a, b, _) = seeded
    client.post(f"/cases/{a}/transition", json={"to": "dispatched"})
    assert client.get("/cases/overdue").json()["count"] == 0
    later = client.get("/cases/overdue", params={"at": "2099-01-01T00:00:00+08:00"}).json()
    assert [c["id"] for c in later["cases"]] == [a]
    assert client.get("/cases/overdue", params={"at": "2099-01-01T00:00:00"}).status_code == 422  # no zone


def test_cases_page_with_limit_offset_total_and_a_next_link(client, tmp_path):
    store = client.app.state.service.store
    ids = [store.post_incident(incident(tmp_path / "in", f"i{i}", point=f"P-{i}", district="黄浦区" if i % 2 else "静安区")).case_id for i in range(7)]
    first = client.get("/cases", params={"limit": 3}).json()
    assert (first["total"], first["offset"], first["limit"], first["count"]) == (7, 0, 3, 3) and [c["id"] for c in first["cases"]] == ids[:3]
    seen, page = [], first
    while page["next"]:
        page = client.get(page["next"]).json()
        seen += [c["id"] for c in page["cases"]]
    assert seen == ids[3:] and page["offset"] == 6 and page["next"] is None
    filtered = client.get("/cases", params={"district": "黄浦区", "limit": 2, "offset": 2}).json()
    assert filtered["total"] == 3 and [c["id"] for c in filtered["cases"]] == [ids[5]] and filtered["next"] is None
    assert "district=" in client.get("/cases", params={"district": "黄浦区", "limit": 1}).json()["next"]  # filters are kept
    assert client.get("/cases", params={"offset": 100}).json() | {"cases": None} == {"total": 7, "offset": 100, "limit": 200, "next": None, "count": 0, "cases": None}
    assert client.get("/cases", params={"offset": -1}).status_code == 422
    for case_id in ids[:3]:
        client.post(f"/cases/{case_id}/transition", json={"to": "dispatched"})
    overdue = client.get("/cases/overdue", params={"at": "2099-01-01T00:00:00+08:00", "limit": 2}).json()
    assert overdue["total"] == 3 and overdue["count"] == 2 and "offset=2" in overdue["next"]

"""The district overview (数据看板): its figures per district, street and type, trend, ranking and map points
come from the ledger, every figure links to exactly the cases it counts, and a camera key gets 403."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest

from service.http.keys import Role
from tests.cases.factory import incident

from .conftest import key_of


@pytest.fixture
def ledger(client, tmp_path):
    """Four cases this month: two open in 黄浦区 (one dispatched past its deadline), one rectified in 静安区, one
    rejected (counted nowhere); GPS on all but the last."""
    store = client.app.state.service.store
    now = datetime.now(UTC)
    post = lambda name, **kw: store.post_incident(incident(tmp_path / "in", name, first_seen=now - timedelta(minutes=1), **kw)).case_id  # noqa: E731
    a = post("a", district="黄浦区", point="外滩", gps=(31.2400, 121.4900))
    b = post("b", district="黄浦区", point="外滩", type="garbage", gps=(31.2401, 121.4901))
    c = post("c", district="静安区", point="静安寺", gps=(31.2230, 121.4450))
    d = post("d", district="静安区", point="P-x")
    store.transition(b, "dispatched", actor="t", owner="张三")
    store.transition(c, "dispatched", actor="t", owner="李四")
    store.transition(c, "rectified", actor="t", note="搬走了")
    store.transition(d, "rejected", actor="t", note="误报")
    with store.db.transaction() as s:  # b's deadline has passed
        from pipeline.db.tables.ledger import Case, CaseEvent

        s.get(Case, b).deadline_at = now - timedelta(hours=2)
        ev = s.query(CaseEvent).filter(CaseEvent.case_id == b, CaseEvent.to_status == "dispatched").one()
        ev.deadline_at = now - timedelta(hours=2)
    return {"a": a, "b": b, "c": c, "d": d}


def _ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr data-case="(\d+)">', html)]


def test_figures_count_the_ledger_and_each_links_to_its_cases(client, ledger):
    r = client.get("/overview/figures")
    assert r.status_code == 200, r.text
    o = r.json()
    assert {k: v["count"] for k, v in o["totals"].items()} == {"new": 4, "open": 3, "overdue": 1, "rectified": 1, "relapsed": 0}
    by_district = {row["district"]: {k: v["count"] for k, v in row["figures"].items()} for row in o["by_district"]}
    assert by_district == {"黄浦区": {"open": 2, "overdue": 1, "rectified": 0, "relapsed": 0}, "静安区": {"open": 1, "overdue": 0, "rectified": 1, "relapsed": 0}}
    assert {row["type"]: row["figures"]["open"]["count"] for row in o["by_type"]} == {"street_vending": 2, "garbage": 1}
    assert {(row["district"], row["street"]) for row in o["by_street"]} == {("黄浦区", "南京东路街道"), ("静安区", "南京东路街道")}
    assert [(r["rank"], r["district"], r["score"]) for r in o["ranking"]] == [(1, "静安区", 1), (2, "黄浦区", 2)]
    assert len(o["trend"]) == 12 and o["trend"][-1]["figures"]["new"]["count"] == 4
    assert {(p["point"], p["open"], p["overdue"]) for p in o["points"]} == {("外滩", 2, 1), ("静安寺", 1, 0)}  # no GPS: not on the map
    # each link lists exactly the cases behind its figure
    huangpu = next(row for row in o["by_district"] if row["district"] == "黄浦区")
    assert _ids(client.get(huangpu["figures"]["overdue"]["cases"]).text) == [ledger["b"]]
    assert _ids(client.get(huangpu["figures"]["open"]["cases"]).text) == [ledger["a"], ledger["b"]]
    assert _ids(client.get(o["totals"]["rectified"]["cases"]).text) == [ledger["c"]]
    garbage = next(row for row in o["by_type"] if row["type"] == "garbage")
    assert _ids(client.get(garbage["figures"]["open"]["cases"]).text) == [ledger["b"]]
    bund = next(p for p in o["points"] if p["point"] == "外滩")
    assert _ids(client.get(bund["link"]).text) == [ledger["a"], ledger["b"]]
    assert _ids(client.get(o["trend"][-1]["figures"]["new"]["cases"]).text) == list(ledger.values())
    for figure in o["totals"].values():  # every total's list is as long as the total
        assert len(_ids(client.get(figure["cases"]).text)) == figure["count"]


def test_the_page_draws_tables_trend_ranking_and_map_as_inline_svg(client, ledger):
    page = client.get("/overview")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = unescape(page.text)
    assert "数据看板" in html and "黄浦区" in html and "月度排名" in html
    assert html.count("<svg") == 2 and 'class="dot"' in html and 'data-point="外滩"' in html
    assert all(u.startswith(("/", "http://testserver/")) for u in re.findall(r'(?:src|href|action)="([^"]+)"', html))  # nothing from elsewhere


def test_camera_key_gets_403_and_reviewer_gets_in(client, ledger):
    camera = key_of(client, Role.CAMERA)
    assert client.get("/overview", headers=camera).status_code == 403
    assert client.get("/overview/figures", headers=camera).status_code == 403
    assert client.get("/overview/cases", params={"figure": "open"}, headers=camera).status_code == 403
    assert client.get("/overview/figures", headers=key_of(client, Role.REVIEWER)).status_code == 200
    assert client.get("/overview", headers={"X-API-Key": "wrong"}).status_code == 401


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"figure": "loud"}, "loud"),
        ({"figure": "open", "month": "2026-13"}, "month"),
        ({"figure": "open", "week": "2026-02-30"}, "week"),
        ({"figure": "open", "month": "2026-11", "week": "2026-11-16"}, "not both"),
        ({"figure": "open", "type": "graffiti"}, "graffiti"),
    ],
)
def test_bad_queries_get_a_clear_422(client, params, says):
    r = client.get("/overview/cases", params=params)
    assert r.status_code == 422 and says in r.text, r.text


@pytest.mark.parametrize(
    ("params", "says"),
    [({"month": "2999-01"}, "not started"), ({"month": "0000-01"}, "out of range"), ({"week": "9999-12-27"}, "out of range"), ({"week": "2999-01-01"}, "not started")],
)
def test_a_period_with_no_figures_is_404(client, params, says):
    for path in ("/overview/cases", "/overview", "/overview/figures"):
        if "week" in params and path != "/overview/cases":
            continue
        r = client.get(path, params={"figure": "open", **params} if path == "/overview/cases" else params)
        assert r.status_code == 404 and says in r.json()["detail"], (path, r.text)


def test_a_week_is_named_by_any_of_its_days(client, ledger):
    this = client.get("/overview/figures").json()["trend"][-1]
    monday = this["week"]
    wednesday = (datetime.fromisoformat(monday) + timedelta(days=2)).date().isoformat()
    assert _ids(client.get("/overview/cases", params={"figure": "new", "week": wednesday}).text) == _ids(client.get(this["figures"]["new"]["cases"]).text) != []


def test_dark_cameras_are_shown_beside_the_figures_and_counted_in_none(client, ledger):
    """A camera whose stream went dark is a blind point: the overview lists it (per district and by camera) and
    leaves the case figures and the ranking as they were."""
    from pipeline.domain import Location
    from pipeline.live.outages import CameraOutages

    before = client.get("/overview/figures").json()
    store = client.app.state.service.store
    now = datetime.now(UTC)
    CameraOutages(store.db).open("cam-bund-3", Location(district="黄浦区", street="南京东路街道", point="外滩"), "张三", "rtsp", now - timedelta(minutes=10), now - timedelta(minutes=5), "connection refused")
    o = client.get("/overview/figures").json()
    [dark] = o["dark"]
    assert (dark["district"], dark["outages"], dark["still_dark"]) == ("黄浦区", 1, 1) and 0 < dark["dark_hours"] <= 0.2
    [cam] = o["dark_cameras"]
    assert (cam["camera_id"], cam["point"], cam["owner"], cam["error"]) == ("cam-bund-3", "外滩", "张三", "connection refused")
    assert {k: o[k] for k in ("totals", "by_district", "ranking")} == {k: before[k] for k in ("totals", "by_district", "ranking")}
    page = unescape(client.get("/overview").text)
    assert 'data-camera="cam-bund-3"' in page and "外滩" in page and "离线摄像头 dark cameras" in page
    CameraOutages(store.db).close("cam-bund-3", now)
    o = client.get("/overview/figures").json()
    assert o["dark_cameras"] == [] and o["dark"][0]["still_dark"] == 0

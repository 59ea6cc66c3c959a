"""The review page: it lists what awaits review with its evidence, and its forms dispatch and reject cases;
rejecting with "this spot is a fixture" stops the camera raising the spot again."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import yaml

from tests.cases.factory import incident

from .conftest import MOTO, T0, open_case, post_frame


def test_the_page_lists_cases_awaiting_review_with_thumbnails_and_forms(client, street_jpeg):
    inc = open_case(client, street_jpeg)["incidents"][0]
    page = client.get("/review")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    case_id = inc["case"]["case_id"]
    assert f'id="case-{case_id}"' in html and "非机动车乱停放" in html and "学校东门" in html and "拱墅区" in html
    crop = next(e["sha256"] for e in inc["evidence"] if e["kind"] == "crop")
    context = next(e["sha256"] for e in inc["evidence"] if e["kind"] == "context")
    assert f"/evidence/{crop}" in html and f"/evidence/{context}" in html
    assert f"/review/{case_id}/dispatch" in html and f"/review/{case_id}/reject" in html
    assert 'name="fixture"' in html  # a camera case can mark its spot
    assert "2026-11-21 09:00:00" in html  # shown in the report time zone
    assert all(u.startswith("http://testserver/") for u in re.findall(r'(?:src|href|action)="([^"]+)"', html))  # nothing from a CDN


def test_filters_by_type_and_district(client, tmp_path):
    store = client.app.state.service.store
    store.post_incident(incident(tmp_path / "in", "a", point="P-1", district="黄浦区"))
    store.post_incident(incident(tmp_path / "in", "b", type="garbage", point="P-2", district="静安区"))
    assert 'id="case-1"' in client.get("/review").text and 'id="case-2"' in client.get("/review").text
    by_type = client.get("/review", params={"type": "garbage"}).text
    assert 'id="case-1"' not in by_type and 'id="case-2"' in by_type
    by_district = client.get("/review", params={"district": "黄浦区"}).text
    assert 'id="case-1"' in by_district and 'id="case-2"' not in by_district
    assert "Nothing awaits review" in client.get("/review", params={"district": "西湖区"}).text
    assert client.get("/review", params={"type": "graffiti"}).status_code == 422


def test_dispatch_form_moves_the_case_and_redirects_back(client, tmp_path):
    case_id = client.app.state.service.store.post_incident(incident(tmp_path / "in", "a", district="黄浦区")).case_id
    r = client.post(f"/review/{case_id}/dispatch", data={"owner": "张三", "district": "黄浦区"}, follow_redirects=False)
    assert r.status_code == 303 and "district=" in r.headers["location"] and "dispatched" in r.headers["location"]
    assert client.get(f"/cases/{case_id}").json()["owner"] == "张三"
    page = client.get(r.headers["location"])
    assert f"case {case_id} dispatched to 张三" in page.text and f'id="case-{case_id}"' not in page.text


def test_a_refused_action_re_renders_the_page_with_the_reason(client, tmp_path):
    case_id = client.app.state.service.store.post_incident(incident(tmp_path / "in", "a")).case_id
    r = client.post(f"/review/{case_id}/reject", data={"reason": ""})
    assert r.status_code == 409 and "rejecting needs the reviewer&#39;s reason" in r.text
    assert client.post("/review/999/dispatch", data={"owner": "y"}).status_code == 404
    patrol = client.app.state.service.store.post_incident(incident(tmp_path / "in", "p", camera_id=None, point="P-9", gps=(30.1, 120.1))).case_id
    r = client.post(f"/review/{patrol}/reject", data={"reason": "dup", "fixture": "on"})
    assert r.status_code == 422 and "not from a fixed camera" in r.text
    assert client.get(f"/cases/{patrol}").json()["status"] == "detected"  # refused before anything changed


def test_reject_with_fixture_rejects_adds_fixtures_and_the_spot_stays_quiet(client, street_jpeg, camera_config):
    case_id = open_case(client, street_jpeg)["incidents"][0]["case"]["case_id"]
    r = client.post(f"/review/{case_id}/reject", data={"reason": "共享单车停放点", "fixture": "on"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    case = client.get(f"/cases/{case_id}").json()
    assert case["status"] == "rejected" and case["reject_reason"] == "共享单车停放点"
    [fixture] = yaml.safe_load((camera_config.parent / "fixtures.yaml").read_text(encoding="utf-8"))["cam-1"]
    assert fixture["id"] == f"case{case_id}-1" and fixture["classes"] == ["motorcycle"] and fixture["coords"] == "normalized"
    assert fixture["box"] == pytest.approx([v / 640 for v in MOTO], abs=1e-3)
    assert "共享单车停放点" in fixture["reason"]
    later = post_frame(client, street_jpeg, T0 + timedelta(seconds=4)).json()
    assert later["violations"] == [] and later["incidents"] == []
    assert not any(abs(d["box"][0] - MOTO[0]) < 2 and abs(d["box"][3] - MOTO[3]) < 2 for d in later["detections"])


def test_the_page_shows_one_page_of_cases_with_links_to_the_others(client, tmp_path):
    store = client.app.state.service.store
    ids = [store.post_incident(incident(tmp_path / "in", f"i{i}", point=f"P-{i}")).case_id for i in range(55)]
    first = client.get("/review").text
    assert first.count('class="case"') == 50 and f'id="case-{ids[49]}"' in first and f'id="case-{ids[50]}"' not in first
    assert "cases 1–50 of 55" in first and "(55)" in first
    nxt = re.search(r'href="([^"]+)" rel="next"', first).group(1).replace("&amp;", "&")
    second = client.get(nxt).text
    assert second.count('class="case"') == 5 and f'id="case-{ids[54]}"' in second and 'rel="prev"' in second and 'rel="next"' not in second
    assert 'name="offset" value="50"' in second  # an action there comes back to the same page
    r = client.post(f"/review/{ids[52]}/dispatch", data={"owner": "张三", "offset": "50"}, follow_redirects=False)
    assert r.status_code == 303 and "offset=50" in r.headers["location"]
    assert client.get("/review", params={"limit": 10, "offset": 10}).text.count('class="case"') == 10

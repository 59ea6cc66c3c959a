"""Review at speed and the district overview in a real browser (headless Debian chromium, Playwright) against a
real uvicorn server: the compact list's keys (j/k move, x select, r/d decide), a bulk reject, the owner
prefilled from the camera config, the editor filling the window with a key for every class; and the overview
(数据看板): Chinese text, figures whose links lead to the cases behind them, a screenshot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import unquote_plus

import pytest

from pipeline.samples.labels import label_classes
from tests.cases.factory import incident

from .test_review_browser import chromium, login, server  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow
VIEWPORT = {"width": 1400, "height": 1000}


def _browse(p, chromium_path):  # noqa: F811
    from tests.browser import launch

    browser = launch(p, chromium_path)
    page = browser.new_page(viewport=VIEWPORT)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    return browser, page, errors


def test_list_keys_bulk_reject_and_prefilled_owner(chromium, server, tmp_path):  # noqa: F811
    from playwright.sync_api import sync_playwright

    base, store = server
    post = lambda name, **kw: store.post_incident(incident(tmp_path / "in", name, **kw)).case_id  # noqa: E731
    patrol = post("patrol", camera_id=None, owner=None, district="拱墅区", point="学校东门", gps=(30.2936, 120.1614))  # cam-1's point: 李娜
    junk = [post(f"junk-{i}", point=f"P-j{i}", district="上城区") for i in range(2)]
    order = [c.id for c in store.list(status=["detected", "reopened"])]
    with sync_playwright() as p:
        browser, page, errors = _browse(p, chromium)
        login(page, base)
        rows = page.locator("tr.case")
        assert rows.count() == len(order) and page.locator("tr.case.current").get_attribute("data-case") == str(order[0])
        assert page.locator(f"#case-{patrol} input[name=owner]").input_value() == "李娜"  # patrol case, owner from the config
        assert (rows.first.bounding_box()["height"]) < 120  # compact: many cases per screen

        for _ in range(3):
            page.keyboard.press("j")
        page.keyboard.press("k")
        assert page.locator("tr.case.current").get_attribute("data-case") == str(order[2])
        for cid in junk:  # move to each and select it
            page.locator(f"#case-{cid} td.place").click()
            page.keyboard.press("x")
        assert page.locator("#selected-count").inner_text() == "2 selected" and page.locator("tr.case.selected").count() == 2
        page.keyboard.press("r")  # a reason first
        assert page.evaluate("document.activeElement.id") == "bulk-reason"
        page.keyboard.type("店家自己的桌椅")
        page.keyboard.press("Enter")
        page.wait_for_url("**/review?msg=*")
        assert "2 case(s) rejected" in page.locator(".msg").inner_text()
        assert page.locator("tr.case").count() == len(order) - 2

        page.locator(f"#case-{patrol} td.place").click()
        page.keyboard.press("d")  # the current case to its prefilled owner
        page.wait_for_url(lambda url: "dispatched" in unquote_plus(url))  # the page is already at /review?msg=…: wait for the new message
        assert f"case {patrol} dispatched to 李娜" in page.locator(".msg").inner_text()
        browser.close()
    assert errors == []
    assert [store.get(c).status for c in junk] == ["rejected", "rejected"] and store.get(junk[0]).reject_reason == "店家自己的桌椅"
    assert store.get(junk[0]).history[-1].actor == "王审核"
    assert (store.get(patrol).status, store.get(patrol).owner) == ("dispatched", "李娜")


def test_editor_fills_the_window_and_every_class_has_a_key(chromium, server):  # noqa: F811
    from playwright.sync_api import sync_playwright

    base, store = server
    camera_case = store.list()[0].id
    classes = label_classes()
    with sync_playwright() as p:
        browser, page, errors = _browse(p, chromium)
        login(page, base)
        page.goto(f"{base}/review/{camera_case}/label")
        page.wait_for_selector("#editor rect.box")
        svg = page.locator("#editor").bounding_box()
        aside = page.locator(".label-grid aside").bounding_box()
        assert svg["width"] == pytest.approx(svg["height"], abs=2)  # the 640x640 frame at its aspect: no letterbox inside
        assert svg["y"] + svg["height"] >= VIEWPORT["height"] - 20  # as tall as the window allows
        assert aside["x"] + aside["width"] >= VIEWPORT["width"] - 40 and aside["x"] - (svg["x"] + svg["width"]) < 30  # nothing unused beside it

        keys = page.locator("#classes li").evaluate_all("els => els.map(e => [e.dataset.class, e.dataset.key, e.querySelector('kbd')?.textContent])")
        assert [c for c, _, _ in keys] == list(classes)
        assert all(k and kbd == k.upper() for _, k, kbd in keys) and len({k for _, k, _ in keys}) == len(classes)
        page.click("#box-list li[data-i='0']")
        for name, key, _ in (keys[-1], keys[9], keys[0]):  # a letter, the 0 key, a digit
            page.keyboard.press(key)
            assert page.locator("#box-list li.selected").inner_text().startswith(f"{name} ·")
        page.set_viewport_size({"width": 900, "height": 1200})  # portrait: now the width is what limits it
        page.wait_for_function("document.querySelector('#editor').getBoundingClientRect().width < 700")
        svg = page.locator("#editor").bounding_box()
        assert svg["width"] >= 900 - 2 * 24 - 288 - 16 - 4 and svg["width"] == pytest.approx(svg["height"], abs=2)
        browser.close()
    assert errors == []


def test_overview_renders_chinese_and_links_to_the_cases_behind_each_figure(chromium, server, tmp_path):  # noqa: F811
    from playwright.sync_api import sync_playwright

    base, store = server
    now = datetime.now(UTC) - timedelta(minutes=1)
    post = lambda name, **kw: store.post_incident(incident(tmp_path / "in", name, first_seen=now, **kw)).case_id  # noqa: E731
    late = post("late", district="上城区", point="湖滨步行街北口", type="garbage", gps=(30.25904, 120.16501))
    post("open", district="上城区", point="河坊街", gps=(30.2418, 120.1690))
    fixed = post("fixed", district="西湖区", point="北山路12号后巷", gps=(30.26108, 120.14609))
    store.transition(late, "dispatched", actor="t", owner="王强")
    store.transition(fixed, "dispatched", actor="t", owner="张伟")
    store.transition(fixed, "rectified", actor="t", note="已清理")
    with store.db.transaction() as s:  # the late case's deadline has passed
        from pipeline.db.tables.ledger import Case, CaseEvent

        s.get(Case, late).deadline_at = now - timedelta(hours=1)
        s.query(CaseEvent).filter(CaseEvent.case_id == late, CaseEvent.to_status == "dispatched").one().deadline_at = now - timedelta(hours=1)
    with sync_playwright() as p:
        browser, page, errors = _browse(p, chromium)
        page.set_viewport_size({"width": 1280, "height": 1000})
        login(page, base)
        page.click("text=数据看板 overview")
        page.wait_for_selector("#by-district table")
        assert "数据看板" in page.locator("h1").inner_text()
        glyph = page.evaluate("(() => { const c = document.createElement('canvas').getContext('2d'); c.font = '20px system-ui, \"WenQuanYi Zen Hei\", sans-serif'; return [c.measureText('看').width, c.measureText('板').width]; })()")
        assert glyph[0] > 15 and glyph[1] > 15  # CJK glyphs drawn at full width (a font that has them)
        shot = tmp_path / "overview.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000

        row = page.locator("#by-district tr", has_text="上城区")
        row.locator("td[data-figure=overdue] a").click()  # overdue in 上城区: the late case
        page.wait_for_url("**/overview/cases?figure=overdue*")
        assert [r.get_attribute("data-case") for r in page.locator("#cases tbody tr").all()] == [str(late)]
        assert "上城区" in page.locator("#filters").inner_text()
        page.go_back()
        page.locator("#total-rectified").click()
        page.wait_for_url("**/overview/cases?figure=rectified*")
        assert [r.get_attribute("data-case") for r in page.locator("#cases tbody tr").all()] == [str(fixed)]
        page.go_back()
        page.locator("#map a.point[data-point='湖滨步行街北口'] circle").click()
        page.wait_for_url("**/overview/cases?figure=open*")
        assert [r.get_attribute("data-case") for r in page.locator("#cases tbody tr").all()] == [str(late)]
        page.go_back()
        page.locator("#trend a.dot[data-figure=new]").last.click()  # this week's new cases
        page.wait_for_url("**/overview/cases?figure=new&week=*")
        assert {r.get_attribute("data-case") for r in page.locator("#cases tbody tr").all()} >= {str(late), str(fixed)}
        browser.close()
    assert errors == []

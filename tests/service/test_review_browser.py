"""The review page end to end in a real browser (headless Debian chromium, driven by Playwright) against a real
`uvicorn` server: log in, fix a box in the editor and dispatch that case with the keyboard, reject the next
one, log out; then the database says exactly that."""

from __future__ import annotations

import shutil
from datetime import timedelta

import httpx
import pytest

from pipeline.cases.annotations import Annotations
from pipeline.cases.config import LedgerConfig
from pipeline.db.engine import Database
from service.http.app import create_app
from service.http.keys import KeyStore, Role
from service.settings import ServiceSettings
from tests.browser import ensure_chromium, launch
from tests.cases.factory import incident
from tests.support.serve import serve_app

from .conftest import T0

pytestmark = pytest.mark.slow

KEYS: dict[Role, str] = {}  # the reviewer who logs in, and the camera that sends the frames


@pytest.fixture(scope="session")
def chromium():
    return ensure_chromium()


@pytest.fixture
def server(tmp_path, camera_config, models_root, ledger_template, street_jpeg):
    """A live service on a free port with two cases awaiting review: a camera case with its frame, and one without."""
    db = tmp_path / "ledger.db"
    shutil.copy(ledger_template, db)
    keys = KeyStore(Database(f"sqlite:///{db}", auto_upgrade=False))
    KEYS.update({Role.REVIEWER: keys.create("王审核", Role.REVIEWER).key, Role.CAMERA: keys.create("cam-gate", Role.CAMERA).key})
    keys.db.dispose()
    ledger = LedgerConfig(database_url=f"sqlite:///{db}", evidence_dir=tmp_path / "evidence", auto_upgrade=False)
    app = create_app(ServiceSettings(camera_config=camera_config, ledger=ledger, models_dir=models_root, evidence_dir=tmp_path / "engine", threads=1))
    with serve_app(app) as base:
        with httpx.Client(base_url=base, headers={"X-API-Key": KEYS[Role.CAMERA]}, timeout=60) as http:
            for dt in (0, 2):  # the parked motorbike stands its dwell: a camera case with a frame to label
                r = http.post("/frames", data={"camera_id": "cam-1", "taken_at": (T0 + timedelta(seconds=dt)).isoformat()}, files={"image": ("f.jpg", street_jpeg, "image/jpeg")})
                assert r.status_code == 200, r.text
        store = app.state.service.store
        store.post_incident(incident(tmp_path / "in", "stall-1", point="P-9", district="拱墅区", camera_id="cam-2"))
        yield base, store


def login(page, base: str) -> None:
    """The reviewer's key opens a session (the page keeps only the session's cookie, never the key)."""
    page.goto(f"{base}/review")
    page.fill('input[name="key"]', KEYS[Role.REVIEWER])
    page.click("text=Log in")
    page.wait_for_selector("tr.case")


def logout(page, base: str) -> None:
    """Log out ends the session on the server: the old cookie no longer opens the page."""
    cookie = next(c for c in page.context.cookies() if c["name"] == "streetorder_session")
    page.goto(f"{base}/review")
    page.click("text=Log out")
    page.wait_for_selector('input[name="key"]')
    page.context.add_cookies([cookie])  # the cookie as it was before logging out
    page.goto(f"{base}/review")


def _centre(box) -> tuple[float, float]:
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def test_review_page_end_to_end_in_chromium(chromium, server):
    from playwright.sync_api import sync_playwright

    base, store = server
    camera_case, other = (c.id for c in store.list())
    proposals_before = httpx.get(f"{base}/review/{camera_case}/boxes", headers={"X-API-Key": KEYS[Role.REVIEWER]}).json()
    errors: list[str] = []
    with sync_playwright() as p:
        browser = launch(p, chromium)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("pageerror", lambda e: errors.append(str(e)))
        login(page, base)
        assert page.locator(f"#case-{camera_case}").is_visible() and page.locator(f"#case-{other}").is_visible()

        page.click(f"#case-{camera_case} a.label-link")
        page.wait_for_selector("#editor rect.box")
        # fix the violation's box: select it (from the list), drag its bottom-right corner out
        [target] = proposals_before["violation"]
        page.click(f"#box-list li[data-i='{target}']")
        assert page.locator("#editor rect.box.selected").get_attribute("class").split() == ["box", "selected", "violation"]
        handle = page.locator('#editor rect.handle[data-corner="se"]')
        x, y = _centre(handle.bounding_box())
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x + 40, y + 30, steps=6)
        page.mouse.up()
        # draw a missed object on empty ground and make it a garbage bin with its class key
        frame = page.locator("#editor").bounding_box()
        page.mouse.move(frame["x"] + 20, frame["y"] + 20)
        page.mouse.down()
        page.mouse.move(frame["x"] + 90, frame["y"] + 110, steps=6)
        page.mouse.up()
        page.keyboard.press("2")
        assert page.locator("#box-list li.selected").inner_text().startswith("garbage_bin · drawn")
        page.keyboard.press("d")  # dispatch: the unsaved boxes are saved first, then on to the next case
        page.wait_for_url(f"**/review/{other}/label**")
        assert f"case {camera_case} dispatched" in page.locator("#status").inner_text()

        page.keyboard.press("Escape")
        page.locator("body").click(position={"x": 5, "y": 5})
        page.keyboard.press("r")  # no reason yet: the page asks for one
        assert page.evaluate("document.activeElement.id") == "reason"
        page.keyboard.type("误报：店家自己的桌椅")
        page.keyboard.press("Enter")
        page.wait_for_url("**/review?msg=*")
        assert "Nothing awaits review" in page.content()

        logout(page, base)
        assert page.locator('input[name="key"]').is_visible() and page.locator("tr.case").count() == 0
        browser.close()
    assert errors == []

    dispatched, rejected = store.get(camera_case), store.get(other)
    assert dispatched.status == "dispatched" and dispatched.history[-1].actor == "王审核"
    assert rejected.status == "rejected" and rejected.reject_reason == "误报：店家自己的桌椅" and rejected.history[-1].actor == "王审核"
    log = Annotations(store.db).history(camera_case)
    assert [(a.action, a.reviewer, a.source) for a in log] == [("boxes", "王审核", "review-page"), ("dispatch", "王审核", "review-page")]
    saved = log[0]
    [edited] = [b for b in saved.boxes if b.origin == "edited"]
    assert edited.proposal == target
    before = proposals_before["proposals"][edited.proposal]["box"]
    assert edited.class_name == "motorcycle" and edited.box[2] > before[2] + 10 and edited.box[3] > before[3] + 10 and edited.box[:2] == pytest.approx(before[:2], abs=0.5)
    [drawn] = [b for b in saved.boxes if b.origin == "drawn"]
    assert drawn.class_name == "garbage_bin" and drawn.box[2] - drawn.box[0] > 20
    assert len(saved.boxes) == len(proposals_before["proposals"]) + 1 and saved.negatives == ()
    assert [(a.action, a.reviewer) for a in Annotations(store.db).history(other)] == [("reject", "王审核")]

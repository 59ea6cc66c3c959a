"""Text a hostile client sends: control, bidi and zero-width characters in free-text and place fields, a fixture
with an empty class list, and an unknown type in the review page's forms. Each is refused with 422 and a reason
before it reaches the fixtures file or the ledger; what is already in a ledger is shown with those characters
written out."""

from __future__ import annotations

import pytest
import yaml
from sqlalchemy import update

from pipeline.db.tables.ledger import Case
from tests.cases.factory import incident

RLO, ZWSP = "\u202e", "\u200b"


def _detail(r) -> str:
    return str(r.json()["detail"])


@pytest.mark.parametrize("reason, found", [("kiosk\x00", "U+0000"), ("kiosk \u202egnikrap", "U+202E RIGHT-TO-LEFT OVERRIDE")])
def test_a_fixture_reason_with_a_control_or_bidi_character_is_refused_and_never_written(client, camera_config, reason, found):
    r = client.post("/cameras/cam-1/fixtures", json={"box": [10, 10, 50, 50], "reason": reason})
    assert r.status_code == 422 and found in _detail(r) and "reason" in _detail(r)
    assert not (camera_config.parent / "fixtures.yaml").exists()
    ok = client.post("/cameras/cam-1/fixtures", json={"box": [10, 10, 50, 50], "reason": "permitted kiosk\nsince May"})  # line breaks are fine
    assert ok.status_code == 201, ok.text
    edit = client.put(f"/cameras/cam-1/fixtures/{ok.json()['id']}", json={"box": [10, 10, 50, 50], "reason": reason})
    assert edit.status_code == 422
    stored = yaml.safe_load((camera_config.parent / "fixtures.yaml").read_text(encoding="utf-8"))
    assert [f["reason"] for f in stored["cam-1"]] == ["permitted kiosk\nsince May"]


def test_a_fixture_with_an_empty_class_list_is_refused(client, camera_config):
    """`classes: []` used to be read as 'all classes': the opposite of what it says."""
    r = client.post("/cameras/cam-1/fixtures", json={"box": [10, 10, 50, 50], "classes": [], "reason": "kiosk"})
    assert r.status_code == 422 and "classes" in _detail(r) and "at least 1" in _detail(r)
    assert not (camera_config.parent / "fixtures.yaml").exists()
    assert client.post("/cameras/cam-1/fixtures", json={"box": [10, 10, 50, 50], "reason": "kiosk"}).status_code == 201  # omitted: all


@pytest.mark.parametrize("bad, found", [(f"南京{RLO}路口", "U+202E"), (f"南京{ZWSP}路口", "U+200B ZERO WIDTH SPACE"), ("南京\x00路口", "U+0000")])
def test_place_fields_with_bidi_zero_width_or_control_characters_are_refused_at_intake(client, street_jpeg, bad, found):
    form = {"lat": "31.2304", "lon": "121.4737", "taken_at": "2026-11-21T11:00:00+08:00", "district": "黄浦区"}
    for field in ("district", "street", "point"):
        r = client.post("/photos", data=form | {field: bad}, files={"image": ("p.jpg", street_jpeg, "image/jpeg")})
        assert r.status_code == 422 and found in _detail(r) and field in _detail(r), (field, r.text)
    assert client.get("/cases").json()["total"] == 0


def test_owner_and_notes_are_checked_on_the_review_forms_and_the_api(client, tmp_path):
    store = client.app.state.service.store
    case_id = store.post_incident(incident(tmp_path / "in", "a")).case_id
    r = client.post(f"/review/{case_id}/dispatch", data={"owner": f"张{RLO}三"}, follow_redirects=False)
    assert r.status_code == 422 and "U+202E" in _detail(r)
    r = client.post(f"/cases/{case_id}/transition", json={"to": "dispatched", "owner": f"张{ZWSP}三"})
    assert r.status_code == 422 and "U+200B" in _detail(r)
    r = client.post(f"/review/{case_id}/reject", data={"reason": "bollard\x00"}, follow_redirects=False)
    assert r.status_code == 422 and "U+0000" in _detail(r)
    assert store.get(case_id).status == "detected"


def test_an_unknown_type_in_a_review_form_is_refused(client, tmp_path):
    case_id = client.app.state.service.store.post_incident(incident(tmp_path / "in", "a")).case_id
    for action, form in (("dispatch", {"owner": "张三"}), ("reject", {"reason": "bollard"})):
        r = client.post(f"/review/{case_id}/{action}", data=form | {"type": "graffiti"}, follow_redirects=False)
        assert r.status_code == 422 and "unknown violation type 'graffiti'" in _detail(r), r.text
    assert client.app.state.service.store.get(case_id).status == "detected"
    ok = client.post(f"/review/{case_id}/dispatch", data={"owner": "张三", "type": "street_vending"}, follow_redirects=False)
    assert ok.status_code == 303 and "type=street_vending" in ok.headers["location"]


def test_a_ledger_row_from_before_the_check_is_listed_with_its_invisible_characters_written_out(client, tmp_path):
    store = client.app.state.service.store
    case_id = store.post_incident(incident(tmp_path / "in", "a", point="学校东门")).case_id
    with store.db.transaction() as s:  # as a ledger written before intake refused them holds it
        s.execute(update(Case).where(Case.id == case_id).values(point=f"学校{RLO}东门{ZWSP}"))
    html = client.get("/review").text
    assert f'id="case-{case_id}"' in html
    assert RLO not in html and ZWSP not in html
    assert "学校⟨U+202E⟩东门⟨U+200B⟩" in html

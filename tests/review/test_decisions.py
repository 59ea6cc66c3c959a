"""Review decisions are domain logic: the CLI, the API and the page reject a case (and mark its spot as a
fixture) through the same `pipeline.review.decisions` code."""

from __future__ import annotations

import pytest
import yaml

from pipeline.cases import CaseStore, LedgerConfig
from pipeline.cases.lifecycle import CaseStatus
from pipeline.cli import main
from pipeline.config import ConfigError
from pipeline.config.load import FixtureConflict, UnknownCamera, load_config
from pipeline.config.source import ConfigSource
from pipeline.review.decisions import NotACameraCase, dispatch, reject
from tests.cases.factory import incident

CAMERA = """
fixtures_file: fixtures.yaml
cameras:
  - id: cam-1
    location: {district: 黄浦区, point: P-001}
    resolution: [640, 480]
"""


@pytest.fixture
def setup(tmp_path):
    (tmp_path / "city.yaml").write_text(CAMERA, encoding="utf-8")
    ledger = LedgerConfig(database_url=f"sqlite:///{tmp_path / 'ledger.db'}", evidence_dir=tmp_path / "evidence")
    store = CaseStore.open(ledger)
    yield tmp_path, store
    store.close()


def _post(store, tmp_path, incident_id, **kw) -> int:
    report = incident(tmp_path, incident_id, **kw)
    store.post_incident(report, at=report.last_seen)
    return store.case_for_incident(incident_id)


def test_reject_with_fixture_adds_the_spot_for_the_types_classes(setup):
    tmp_path, store = setup
    case_id = _post(store, tmp_path, "inc-1", type="non_motor_parking", box=(100, 100, 300, 240))
    source = ConfigSource(tmp_path / "city.yaml")
    done = reject(store, case_id, actor="annotator", reason="bike rack", fixture_source=source)
    assert done.case.status == CaseStatus.REJECTED
    (fixture,) = done.fixtures
    assert fixture.classes == ("bicycle", "motorcycle")  # classes_for(non_motor_parking), from the rules config
    assert fixture.box == (100, 100, 300, 240)
    assert load_config(tmp_path / "city.yaml").camera("cam-1").fixtures == (fixture,)
    assert source.get().camera("cam-1").fixtures == (fixture,)  # picked up at once
    assert done.message() == f"case {case_id} rejected; 1 fixture(s) added to camera cam-1"


def test_a_refused_fixture_leaves_the_case_and_the_config_untouched(setup):
    tmp_path, store = setup
    patrol = _post(store, tmp_path, "inc-2", camera_id=None, box=None, point="P-002")
    with pytest.raises(NotACameraCase):
        reject(store, patrol, actor="a", reason="x", fixture_source=ConfigSource(tmp_path / "city.yaml"))
    assert store.get(patrol).status == CaseStatus.DETECTED
    elsewhere = _post(store, tmp_path, "inc-3", camera_id="cam-9", point="P-009")
    with pytest.raises(UnknownCamera):
        reject(store, elsewhere, actor="a", reason="x", fixture_source=ConfigSource(tmp_path / "city.yaml"))
    (tmp_path / "city.yaml").write_text(CAMERA.replace("fixtures_file: fixtures.yaml\n", ""), encoding="utf-8")
    camera_case = _post(store, tmp_path, "inc-4", point="P-004")
    with pytest.raises(FixtureConflict, match="no fixtures_file"):
        reject(store, camera_case, actor="a", reason="x", fixture_source=ConfigSource(tmp_path / "city.yaml"))
    assert {store.get(c).status for c in (elsewhere, camera_case)} == {CaseStatus.DETECTED}
    assert not (tmp_path / "fixtures.yaml").exists()


def test_fixtures_are_clamped_to_the_frame_and_a_taken_id_is_refused_before_anything_changes(setup):
    tmp_path, store = setup
    (tmp_path / "city.yaml").write_text(CAMERA.replace("[640, 480]", "[150, 150]"), encoding="utf-8")
    case_id = _post(store, tmp_path, "inc-5", box=(100, 100, 200, 220))
    (fixture,) = reject(store, case_id, actor="a", reason="kiosk", fixture_source=ConfigSource(tmp_path / "city.yaml")).fixtures
    assert fixture.box == (100, 100, 150, 150)  # inside the camera's frame, so the config stays loadable
    before = store.get(case_id).model_dump()
    with pytest.raises(FixtureConflict, match="already has fixture"):  # checked before the (refused) transition
        reject(store, case_id, actor="a", reason="kiosk", fixture_source=ConfigSource(tmp_path / "city.yaml"))
    assert store.get(case_id).model_dump() == before


def test_dispatch_goes_to_the_case_owner_or_the_one_named(setup):
    tmp_path, store = setup
    case_id = _post(store, tmp_path, "inc-7")
    assert dispatch(store, case_id, actor="chief", owner="li").owner == "li"


def test_the_cli_rejects_through_the_same_code(setup, capsys):
    tmp_path, store = setup
    case_id = _post(store, tmp_path, "inc-8", type="garbage", box=(20, 20, 120, 90))
    db = ["--db", store.config.database_url]
    assert main(["cases", "transition", str(case_id), "rejected", "--actor", "annotator", "--note", "a bin that belongs here", "--fixture", "--config", str(tmp_path / "city.yaml"), *db]) == 0
    assert "1 fixture(s) added to camera cam-1" in capsys.readouterr().out
    fixtures = yaml.safe_load((tmp_path / "fixtures.yaml").read_text(encoding="utf-8"))["cam-1"]
    assert fixtures[0]["classes"] == ["garbage", "overflow"] and "a bin that belongs here" in fixtures[0]["reason"]
    assert main(["cases", "transition", str(case_id), "dispatched", "--actor", "a", "--fixture", *db]) == 2  # --fixture only when rejecting

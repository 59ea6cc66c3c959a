"""Camera config: validated, with errors that name the field, the file and the line."""

from __future__ import annotations

from datetime import datetime

import pytest

from pipeline.config import ConfigError, Fixture, TimeWindow, load_config, parse_config
from pipeline.config.load import add_fixture

from tests.conftest import REPO

CAMERA = """
cameras:
  - id: cam1
    location: {district: 西湖区, point: P1}
    resolution: [640, 480]
    zones:
{zones}
"""


def cfg_with(zones: str):
    return parse_config(CAMERA.replace("{zones}", zones), "cams.yaml")


def test_sample_config_loads():
    config = load_config(REPO / "datasets" / "sample-city.yaml")
    assert {c.id for c in config.cameras} == {"cam-lane", "cam-walkway", "cam-corner"}
    assert config.rules.garbage.min_dwell_s == 120


def test_self_crossing_polygon_is_refused_with_line():
    with pytest.raises(ConfigError) as e:
        cfg_with("      - {id: bow, kind: no_vending, polygon: [[0, 0], [100, 100], [100, 0], [0, 100]]}")
    msg = str(e.value)
    assert "cams.yaml:7: cameras[0].zones[0].polygon" in msg and "crosses itself" in msg


def test_polygon_out_of_frame():
    with pytest.raises(ConfigError, match=r"point 1 \(700.0, 10.0\) lies outside the frame \(640x480 pixels\)"):
        cfg_with("      - {id: z, kind: garbage_watch, polygon: [[0, 0], [700, 10], [10, 100]]}")
    with pytest.raises(ConfigError, match="0..1 normalized"):
        cfg_with("      - {id: z, kind: garbage_watch, coords: normalized, polygon: [[0, 0], [1.2, 0], [0.5, 0.5]]}")


@pytest.mark.parametrize(
    "zones, fragment",
    [
        ("      - {id: z, kind: parking, polygon: [[0, 0], [10, 0], [10, 10]]}", "zones[0].kind: Input should be"),
        ("      - {id: z, kind: no_parking, polygon: [[0, 0], [10, 0]]}", "at least 3 points"),
        ("      - {id: z, kind: no_parking, polygon: [[0, 0], [5, 5], [10, 10]]}", "zero area"),
        ("      - {id: z, kind: no_parking, polygon: [[0, 0], [10, 0], [10, 10]], colour: red}", "zones[0].colour: Extra inputs are not permitted"),
        (
            "      - {id: z, kind: no_vending, polygon: [[0, 0], [10, 0], [10, 10]], schedule: {allowed: ['18:00']}}",
            "must look like 'HH:MM-HH:MM'",
        ),
        (
            "      - {id: z, kind: no_parking, polygon: [[0, 0], [10, 0], [10, 10]]}\n      - {id: z, kind: ignore, polygon: [[0, 0], [10, 0], [10, 10]]}",
            "zone ids must be unique",
        ),
    ],
)
def test_bad_zones(zones, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(").replace(")", r"\)")):
        cfg_with(zones)


def test_bad_yaml_and_wrong_types():
    with pytest.raises(ConfigError, match=r"cams.yaml:4: not valid YAML"):
        parse_config("cameras:\n  - id: a\n    location: {district: x\n", "cams.yaml")
    with pytest.raises(ConfigError, match="must be a mapping"):
        parse_config("- just\n- a list\n", "cams.yaml")
    with pytest.raises(ConfigError, match=r"rules.garbage.min_dwell_s: Input should be greater than or equal to 0"):
        parse_config("rules:\n  garbage: {min_dwell_s: -1}\n", "cams.yaml")
    with pytest.raises(ConfigError, match=r"cameras\[0\].resolution"):
        parse_config("cameras:\n  - {id: a, location: {district: d, point: p}, resolution: wide}\n", "cams.yaml")


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "none.yaml")
    bad = tmp_path / "bin.yaml"
    bad.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="not a UTF-8"):
        load_config(bad)


@pytest.mark.parametrize(
    "window, at, inside",
    [
        ("18:00-23:00", datetime(2026, 11, 21, 20, 0), True),
        ("18:00-23:00", datetime(2026, 11, 21, 10, 0), False),
        ("18:00-23:00", datetime(2026, 11, 21, 23, 0), False),
        ("22:00-02:00", datetime(2026, 11, 21, 23, 30), True),
        ("22:00-02:00", datetime(2026, 11, 22, 1, 30), True),
        ("22:00-02:00", datetime(2026, 11, 22, 2, 30), False),
    ],
)
def test_time_windows(window, at, inside):
    start, end = window.split("-")
    assert TimeWindow(start=start, end=end).contains(at) is inside


def test_window_days_follow_the_opening_day():
    w = TimeWindow(start="22:00", end="02:00", days=("fri",))
    assert w.contains(datetime(2026, 11, 20, 23, 0))  # Friday night
    assert w.contains(datetime(2026, 11, 21, 1, 0))  # early Saturday, opened Friday
    assert not w.contains(datetime(2026, 11, 21, 23, 0))  # Saturday night


def test_fixtures_file_is_merged_and_validated(tmp_path):
    (tmp_path / "cams.yaml").write_text(CAMERA.replace("{zones}", "      []") + "fixtures_file: fixtures.yaml\n", encoding="utf-8")
    add_fixture(tmp_path / "fixtures.yaml", "cam1", Fixture(id="bollard", box=(10, 10, 40, 90), classes=("garbage_bin",), reason="rejected case 7"))
    config = load_config(tmp_path / "cams.yaml")
    assert [f.id for f in config.camera("cam1").fixtures] == ["bollard"]
    with pytest.raises(ConfigError, match="already has fixture 'bollard'"):
        add_fixture(tmp_path / "fixtures.yaml", "cam1", Fixture(id="bollard", box=(0, 0, 5, 5)))
    add_fixture(tmp_path / "fixtures.yaml", "cam1", Fixture(id="off", box=(600, 400, 700, 500)))
    with pytest.raises(ConfigError, match="lies outside the frame"):
        load_config(tmp_path / "cams.yaml")


@pytest.mark.slow
def test_config_check_and_schema_know_the_plug_in_rules(tmp_path):
    """`config check` and `config schema` read a plug-in rule's section (materials_piled) as the engine does:
    the command imports only `pipeline.config`, which composes its rules section from every registered rule."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from pipeline.config import config_schema
    from pipeline.rules import RULES

    streetorder = str(Path(sys.executable).parent / "streetorder")
    path = tmp_path / "cams.yaml"
    path.write_text("cameras: []\nrules:\n  materials_piled: {min_dwell_s: 600}\n", encoding="utf-8")
    check = subprocess.run([streetorder, "config", "check", str(path)], capture_output=True, text=True, timeout=120)
    assert check.returncode == 0 and "ok: 0 camera(s)" in check.stdout, check.stderr
    assert load_config(path).rules.rule("materials_piled").min_dwell_s == 600  # what the engine reads
    path.write_text("cameras: []\nrules:\n  materials_piled: {min_dwell_s: -1}\n", encoding="utf-8")
    bad = subprocess.run([streetorder, "config", "check", str(path)], capture_output=True, text=True, timeout=120)
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert bad.returncode != 0 and str(refused.value) in bad.stderr and "min_dwell_s" in bad.stderr
    schema = json.loads(subprocess.run([streetorder, "config", "schema"], capture_output=True, text=True, timeout=120).stdout)
    assert schema == config_schema()
    sections = schema["$defs"]["RulesConfig"]["properties"]
    assert set(sections) == set(RULES)  # every rule the engine runs, built in or plug-in, has its section
    for name, spec in RULES.items():
        described = schema["$defs"][sections[name]["$ref"].rsplit("/", 1)[-1]]
        assert described["properties"].keys() == spec.thresholds.model_fields.keys(), name

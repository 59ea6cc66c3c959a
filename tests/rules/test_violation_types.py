"""A violation type lives in one place: a fourth type (乱堆托盘, pallets stacked on the sidewalk) is one entry in
`domain.VIOLATION_TYPES` and one rule module, and then flows through config, engine, ledger and review.

The toy rule is defined here as a plug-in would be; nothing else in the code base is touched.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from pydantic import Field

from pipeline.cases import CaseStore, LedgerConfig
from pipeline.cases.lifecycle import CaseStatus
from pipeline.config import ConfigError, RulesConfig, load_config, parse_config
from pipeline.detect import make_detections
from pipeline.domain import VIOLATION_TYPES, IncidentReport, ViolationKind, register_violation_type
from pipeline.engine import Engine
from pipeline.rules import RULES, FrameContext, RuleThresholds, Violation, rule
from pipeline.source.frames import Frame
from pipeline.rules.base import clusters, make_violation

TYPE = "pallets_stacked"
NAMES = ("garbage", "person", "bicycle", "box")
TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 20, 22, 0, tzinfo=TZ)
IMG = np.full((480, 640, 3), 90, np.uint8)

CONFIG = """
cameras:
  - id: cam
    location: {district: 西湖区, point: P1}
    resolution: [640, 480]
    zones:
      - {id: walk, kind: garbage_watch, polygon: [[0, 200], [640, 200], [640, 480], [0, 480]]}
rules:
  pallets_stacked: {min_dwell_s: 60, classes: [box]}
  garbage: {enabled: false}
"""


class PalletsRule(RuleThresholds):
    """Pallets stacked on the sidewalk: boxes and pallets that stay put in a watched zone."""

    min_dwell_s: float = Field(300, ge=0)
    classes: tuple[str, ...] = Field(("pallet",), title="Material classes")


def pallets_stacked(ctx: FrameContext) -> list[Violation]:
    cfg = ctx.rules.rule(TYPE)
    out = []
    for zone_id, inside, override in ctx.active_zones("garbage_watch", TYPE):
        piled = np.where(ctx.evidence(cfg, cfg.classes, inside, override))[0].tolist()
        for group in clusters(ctx.detections.xyxy[piled], reach=0.3):
            out.append(make_violation(ctx, TYPE, zone_id, [piled[g] for g in group], severity=1))
    return out


@pytest.fixture
def fourth_type():
    """The one config entry and the one rule registration; undone afterwards so other tests see three types."""
    register_violation_type(ViolationKind(TYPE, "乱堆托盘 pallets stacked", deadline_h=12.0))
    rule(TYPE, thresholds=PalletsRule, reach=0.3)(pallets_stacked)
    yield
    VIOLATION_TYPES.pop(TYPE, None)
    RULES.pop(TYPE, None)


def _frames(engine: Engine, seconds: int) -> list[IncidentReport]:
    box = make_detections(np.array([[100, 300, 180, 380], [185, 310, 240, 380]], float), [0.8, 0.7], [3, 3], NAMES)
    reports = []
    for t in range(0, seconds + 1, 10):
        reports += engine.process(Frame(IMG, T0 + timedelta(seconds=t), "cam"), box).reports
    return reports + engine.flush()


def test_a_fourth_type_flows_from_config_to_a_dispatched_case(fourth_type, tmp_path):
    config = parse_config(CONFIG)
    assert config.rules.classes_for(TYPE) == ("box",)  # the YAML section is validated with the rule's own model
    assert "box" in config.rules.used_classes()

    reports = _frames(Engine(config), seconds=120)
    assert reports and {r.type for r in reports} == {TYPE}
    assert min(r.first_seen for r in reports) == T0  # dwell counts from when the pile settled
    assert max(r.count for r in reports) == 2  # the two boxes are one pile

    store = CaseStore.open(LedgerConfig(database_url=f"sqlite:///{tmp_path / 'ledger.db'}", evidence_dir=tmp_path / "evidence"))
    try:
        for r in reports:
            store.post_incident(r, at=r.last_seen)
        (case,) = store.list(type=TYPE)
        dispatched = store.transition(case.id, CaseStatus.DISPATCHED, actor="inspector", owner="张伟", at=T0 + timedelta(hours=1))
        assert dispatched.deadline_at - (T0 + timedelta(hours=1)) == timedelta(hours=12)  # the type's default deadline
    finally:
        store.close()


def test_config_check_and_schema_see_a_plug_in_rule_as_the_engine_does(fourth_type, tmp_path, capsys):
    """A rule registered at run time, after the config models were composed: `streetorder config check` accepts
    and refuses its section exactly as the engine's config does, and `config schema` describes it with the
    rule's own thresholds model."""
    import json

    from pipeline.cli import main

    path = tmp_path / "cams.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    assert main(["config", "check", str(path)]) == 0
    assert "ok: 1 camera(s)" in capsys.readouterr().out
    assert Engine(load_config(path)).config.rules.rule(TYPE) == PalletsRule(min_dwell_s=60, classes=("box",))

    path.write_text(CONFIG.replace("min_dwell_s: 60", "min_dwell_s: -1"), encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert main(["config", "check", str(path)]) != 0
    assert str(refused.value) in capsys.readouterr().err and "rules.pallets_stacked.min_dwell_s" in str(refused.value)

    assert main(["config", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    section = schema["$defs"]["RulesConfig"]["properties"][TYPE]
    described = schema["$defs"][section["$ref"].rsplit("/", 1)[-1]]
    assert described == PalletsRule.model_json_schema()


def test_the_type_is_known_everywhere_types_are_validated(fourth_type):
    report = {"incident_id": "x", "type": TYPE, "source": "patrol", "location": {"district": "d", "point": "p"}, "first_seen": T0, "last_seen": T0, "score": 0.5}
    assert IncidentReport.model_validate(report).type == TYPE
    assert TYPE in IncidentReport.model_json_schema()["properties"]["type"]["enum"]
    assert LedgerConfig().deadline_h(TYPE) == 12.0
    assert RulesConfig().rule(TYPE).classes == ("pallet",)  # left out of the YAML: the rule's defaults


def test_without_the_entry_the_type_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="unknown violation type 'pallets_stacked'; known: street_vending, non_motor_parking, garbage, materials_piled"):
        IncidentReport.model_validate({"incident_id": "x", "type": TYPE, "source": "patrol", "location": {"district": "d", "point": "p"}, "first_seen": T0, "last_seen": T0, "score": 0.5})
    with pytest.raises(ConfigError, match="unknown rule 'pallets_stacked'"):
        parse_config(CONFIG)
    with pytest.raises(ValueError, match="add it to domain.VIOLATION_TYPES first"):
        rule(TYPE, thresholds=PalletsRule)(pallets_stacked)


def test_classes_per_type_come_from_the_rules_config():
    rules = RulesConfig()
    assert rules.classes_for("street_vending")[:6] == ("stall", "cart", "umbrella", "dining table", "chair", "bench")
    assert {"orange", "bowl", "goods", "static_object"} <= set(rules.classes_for("street_vending"))  # goods; a fixture hides static objects too
    assert "static_object" not in rules.used_classes()  # no model is asked for it: it comes from the scene
    assert rules.classes_for("non_motor_parking") == ("bicycle", "motorcycle")
    assert rules.classes_for("garbage") == ("garbage", "overflow")
    assert "person" in rules.used_classes()  # vendors and carriers are read too
    off = RulesConfig.model_validate({"street_vending": {"enabled": False}})
    assert {"stall", "umbrella"}.isdisjoint(off.used_classes())

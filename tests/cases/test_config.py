"""The ledger config: defaults, YAML, environment overrides, and clear errors for bad values."""

from __future__ import annotations

import pytest

from pipeline.cases.config import LedgerConfig


def test_defaults_are_valid_and_deliver_nowhere():  # the model's own defaults, no environment involved
    cfg = LedgerConfig()
    assert cfg.database_url == "sqlite:///var/streetorder.db"
    assert cfg.channels == ()
    assert {t: cfg.deadline_h(t) for t in ("street_vending", "non_motor_parking", "garbage")} == {"street_vending": 2, "non_motor_parking": 4, "garbage": 24}
    assert LedgerConfig.model_fields
    for name, field in LedgerConfig.model_fields.items():
        assert field.title, f"{name} has no title"


def test_deadlines_left_out_keep_the_types_defaults(tmp_path):
    f = tmp_path / "ledger.yaml"
    f.write_text("deadlines_h: {garbage: 48}\n", encoding="utf-8")
    cfg = LedgerConfig.load(f)
    assert (cfg.deadline_h("garbage"), cfg.deadline_h("street_vending"), cfg.deadline_h("non_motor_parking")) == (48, 2, 4)


def test_yaml_then_environment(tmp_path, monkeypatch):
    f = tmp_path / "ledger.yaml"
    f.write_text(
        "database_url: sqlite:///from-file.db\n"
        "relapse_days: 14\n"
        "retention: {closed_days: 30}\n"
        "webhook: {url: 'https://city.example/cases', secret: file-secret-0123456789}\n"
        "mqtt: {host: broker, topic_prefix: city/cases}\n",
        encoding="utf-8",
    )
    cfg = LedgerConfig.load(f)
    assert (cfg.database_url, cfg.relapse_days, cfg.retention.closed_days, cfg.channels) == ("sqlite:///from-file.db", 14, 30, ("webhook", "mqtt"))
    monkeypatch.setenv("STREETORDER_DB", "postgresql://root@127.0.0.1/x")
    monkeypatch.setenv("STREETORDER_WEBHOOK_SECRET", "env-secret-0123456789")
    cfg = LedgerConfig.load(f)
    assert cfg.database_url == "postgresql://root@127.0.0.1/x"
    assert cfg.webhook.secret.get_secret_value() == "env-secret-0123456789"
    assert "env-secret" not in repr(cfg)  # secrets stay out of logs
    assert LedgerConfig.load(f, database_url="sqlite:///cli.db").database_url == "sqlite:///cli.db"


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("deadlines_h: {garbage: 24, street_vending: 2, non_motor_parking: 0, trash: 1}", "unknown: \\['trash'\\]"),
        ("report_timezone: Mars/Olympus", "unknown time zone"),
        ("webhook: {url: 'ftp://x', secret: abcdefghijklmnopq}", "must start with http"),
        ("webhook: {url: 'http://x', secret: short}", "at least 16 characters"),
        ("mqtt: {topic_prefix: 'cases/#'}", "wildcards"),
        ("outbox: {backoff_base_s: 10, backoff_max_s: 5}", "must not be below"),
        ("retention: {closed_days: 3}", "must be at least relapse_days"),
        ("relapse_dayz: 3", "relapse_dayz"),
        ("- a list", "mapping at the top level"),
    ],
)
def test_bad_values_are_refused_with_a_clear_message(tmp_path, yaml_text, message):
    f = tmp_path / "bad.yaml"
    f.write_text(yaml_text, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        LedgerConfig.load(f)


def test_the_shipped_example_is_valid_and_states_the_defaults(monkeypatch):
    from ..conftest import REPO

    monkeypatch.delenv("STREETORDER_DB", raising=False)

    example = LedgerConfig.load(REPO / "datasets" / "ledger.example.yaml")
    assert example == LedgerConfig()


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        LedgerConfig.load(tmp_path / "nope.yaml")

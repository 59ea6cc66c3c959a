"""Settings come from the environment in one place: every `STREETORDER_*` variable is a field of a pydantic-settings
model (pipeline/config/settings.py, service/settings.py), listed in pipeline/config/settings.py's table, and no
other module reads one or writes to `os.environ` (ultralytics' YOLO_OFFLINE aside: it must be set before import)."""

from __future__ import annotations

import os
import re

from pipeline.config import settings as pipeline_settings
from pipeline.config.settings import PipelineSettings
from service.settings import ServiceSettings

from tests.conftest import REPO

SETTINGS_MODULES = {REPO / "pipeline" / "config" / "settings.py", REPO / "service" / "settings.py"}
ENV_READ = re.compile(r"\benviron\b|getenv")
ENV_WRITE = re.compile(r"os\.environ\s*\[[^]]*\]\s*=|os\.environ\.(setdefault|update|pop|clear)\(|os\.environ\s*\|=|del\s+os\.environ|putenv|unsetenv")
NAME_CONSTANT = re.compile(r"""^\s*\w+\s*(:\s*\w+)?\s*=\s*["']STREETORDER_[A-Z0-9_]+["']\s*(#.*)?$""")  # ENV = "STREETORDER_X", to read it elsewhere


def _sources():
    for top in ("pipeline", "service"):
        for path in sorted((REPO / top).rglob("*.py")):
            yield path, path.read_text(encoding="utf-8").splitlines()


def test_only_the_settings_modules_read_streetorder_variables():
    offenders = []
    for path, lines in _sources():
        if path in SETTINGS_MODULES:
            continue
        for n, line in enumerate(lines, 1):
            reads = ENV_READ.search(line) and "STREETORDER_" in line
            if reads or NAME_CONSTANT.match(line) or "pydantic_settings" in line:
                offenders.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert offenders == []


def test_nothing_writes_to_the_environment_but_yolo_offline():
    writes = [f"{path.relative_to(REPO)}:{n}: {line.strip()}" for path, lines in _sources() for n, line in enumerate(lines, 1) if ENV_WRITE.search(line)]
    kept = [w for w in writes if w.endswith('os.environ.setdefault("YOLO_OFFLINE", "1")')]
    assert kept, "the check found none of the YOLO_OFFLINE defaults: the pattern is broken"
    assert [w for w in writes if w not in kept] == []


def test_the_table_lists_every_variable():
    declared = set(PipelineSettings.env_names().values()) | set(ServiceSettings.env_names().values())
    listed = set(re.findall(r"^\| (STREETORDER_\w+) \|", pipeline_settings.__doc__, re.M))
    assert "STREETORDER_MODELS" in declared and "ledger" not in ServiceSettings.env_names()
    assert listed == declared


def test_pipeline_settings_read_the_environment_when_built(monkeypatch, tmp_path):
    from pipeline.detect.registry import models_dir
    from pipeline.paths import MODELS_DIR

    monkeypatch.setenv("STREETORDER_MODELS", str(tmp_path))
    assert models_dir() == tmp_path
    monkeypatch.setenv("STREETORDER_MODELS", "")  # empty counts as unset
    assert models_dir() == MODELS_DIR
    monkeypatch.setenv("STREETORDER_FRAME_POOL", "off")
    assert PipelineSettings().frame_pool == "off" and PipelineSettings.load(frame_pool="x").frame_pool == "x"  # a flag wins


def test_rollback_takes_its_models_dir_as_an_argument(tmp_path, monkeypatch, capsys):
    from pipeline.cli import main

    monkeypatch.delenv("STREETORDER_MODELS", raising=False)
    assert main(["rollback", "--models-dir", str(tmp_path)]) == 3  # nothing to roll back to in an empty folder
    assert str(tmp_path) in capsys.readouterr().err and "STREETORDER_MODELS" not in os.environ

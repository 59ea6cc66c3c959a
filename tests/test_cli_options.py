"""A flag means the same in every command: --config is the camera config, --ledger the ledger config."""

from __future__ import annotations

import argparse

import pytest

from pipeline.cli import build_parser


def _commands(parser: argparse.ArgumentParser, prefix: str = ""):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, f"{prefix} {name}".strip())
            return
    yield prefix, parser


def test_config_is_always_the_camera_config_and_ledger_the_ledger_config():
    seen = {"--config": 0, "--ledger": 0}
    assert list(_commands(build_parser()))
    for name, parser in _commands(build_parser()):
        assert parser._actions, name
        for action in parser._actions:
            if "--config" in action.option_strings:
                seen["--config"] += 1
                assert "camera" in action.help, f"streetorder {name}: --config must be the camera config, says {action.help!r}"
            if "--ledger" in action.option_strings:
                seen["--ledger"] += 1
                assert "ledger config" in action.help, f"streetorder {name}: --ledger says {action.help!r}"
                assert any("--db" in a.option_strings for a in parser._actions), f"streetorder {name}: --ledger without --db"
    assert seen["--config"] >= 3 and seen["--ledger"] >= 15  # run, serve, config check...; every ledger command


@pytest.mark.slow
def test_cli_does_not_import_the_web_app_to_build_its_parser():
    import subprocess
    import sys

    code = "import sys; from pipeline.cli import build_parser; build_parser(); print('service.http.app' in sys.modules, 'fastapi' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]

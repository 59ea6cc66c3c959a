"""The shipped scenarios, end to end with the shipped model: exactly the expected incidents, no duplicates,
with and without 30% of frames losing their detections."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .conftest import REPO


def test_scenarios_command_gives_exactly_the_expected_incidents():
    r = subprocess.run(
        [str(Path(sys.executable).parent / "streetorder"), "scenarios", "--json", "--dropout", "0,0.3"],
        cwd=REPO, capture_output=True, text=True, timeout=1200,
    )
    summary = json.loads(r.stdout)
    details = {(s["name"], s["dropout"]): s for s in summary["scenarios"]}
    assert len(details) == 8  # four scenarios, two dropout rates
    assert summary["recall"] == 1.0 and summary["precision"] == 1.0 and summary["duplicate_rate"] == 0.0, json.dumps(summary["scenarios"], indent=1)
    assert r.returncode == 0
    for (name, dropout), s in details.items():
        assert s["produced"] == s["expected"] == s["matched"], (name, dropout, s)
    assert details[("stall-allowed-hours", 0.3)]["produced"] == 0
    garbage = details[("garbage-pile", 0.3)]["incidents"][0]
    assert garbage["ended"] and 58 <= garbage["first_seen_s"] <= 140 and 560 <= garbage["last_seen_s"] <= 602

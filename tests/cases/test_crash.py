"""A posting process killed with SIGKILL half-way loses no case and leaves nothing half-written;
running the same batch again completes it with no duplicates."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter

import pytest
import yaml
from sqlalchemy import func, select

from pipeline.cases.evidence_store import EvidenceStore
from pipeline.db.tables.ledger import Case, CaseEvent, CaseEvidence, CaseIncident, OutboxMessage

from ..conftest import REPO
from .factory import incident
from .test_outbox import TYPES

N = 60
KILL_AFTER = 20


def check_consistent(store) -> dict[str, int]:
    """No half-written case: every case has its incident, its creation event, its evidence files and its
    outbox row; every announced event has exactly one row per channel."""
    files = EvidenceStore(store.config.evidence_dir)
    with store.db.transaction() as s:
        cases = s.scalars(select(Case)).all()
        assert cases, "no case in the ledger"
        for c in cases:
            assert c.incidents, f"case {c.id} has no incident"
            assert c.events and c.events[0].kind == "created", f"case {c.id} has no creation event"
            assert c.evidence, f"case {c.id} has no evidence"
            for e in c.evidence:
                assert files.exists(e.sha256) and files.verify(e.sha256)
        announced = s.scalars(select(CaseEvent.id).where(CaseEvent.kind.in_(["created", "transition", "relapse", "escalated"]))).all()
        rows = Counter(s.scalars(select(OutboxMessage.event_id)).all())
        assert rows == Counter(announced), "every announced event has exactly one outbox row (one channel)"
        return {
            "cases": len(cases),
            "incidents": s.scalar(select(func.count()).select_from(CaseIncident)),
            "evidence": s.scalar(select(func.count()).select_from(CaseEvidence)),
            "outbox": sum(rows.values()),
        }


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_killed_posting_loses_nothing_and_a_rerun_completes_without_duplicates(store, tmp_path):
    batch = tmp_path / "batch.jsonl"
    reports = [incident(tmp_path / "engine", f"night-{i:03d}", type=TYPES[i % 3], point=f"P-{i % 10:02d}") for i in range(N)]
    batch.write_text("\n".join(r.model_dump_json() for r in reports) + "\n", encoding="utf-8")
    expected_cases = len({(r.type, r.location.point) for r in reports})
    config = tmp_path / "ledger.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database_url": store.config.database_url,
                "evidence_dir": str(store.config.evidence_dir),
                "webhook": {"url": "http://127.0.0.1:9/cases", "secret": "s3cret-s3cret-s3cret"},
            }
        )
    )
    cmd = [sys.executable, "-m", "pipeline.cli", "cases", "post", str(batch), "--ledger", str(config)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}

    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    done = []
    for line in proc.stdout:
        done.append(line.split()[0])
        if len(done) == KILL_AFTER:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()

    after_kill = check_consistent(store)
    # everything reported as posted is there; at most the one in flight besides
    assert KILL_AFTER <= after_kill["incidents"] <= KILL_AFTER + 1 < N
    assert len(done) == KILL_AFTER
    for incident_id in done:
        assert store.case_for_incident(incident_id) is not None

    rerun = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=90)
    assert rerun.returncode == 0, rerun.stderr
    outcomes = Counter(line.rsplit(" ", 1)[1] for line in rerun.stdout.splitlines())
    assert outcomes["unchanged"] >= KILL_AFTER and sum(outcomes.values()) == N

    final = check_consistent(store)
    assert final == {"cases": expected_cases, "incidents": N, "evidence": N, "outbox": expected_cases}
    with store.db.transaction() as s:
        keys = s.scalars(select(OutboxMessage.idempotency_key)).all()
    assert len(set(keys)) == len(keys)
    assert sorted(json.loads(r.model_dump_json())["incident_id"] for r in reports) == sorted(i for c in store.list() for i in c.incident_ids)

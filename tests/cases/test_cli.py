"""The ledger's `streetorder` commands, run in-process through the real argument parser."""

from __future__ import annotations

import argparse
import json

import pytest
import yaml

from pipeline.cases.annotations import Annotations
from pipeline.cli import build_parser, main
from pipeline.db.engine import Database, head_revision

from .factory import incident

LEDGER_COMMANDS = [
    ["cases"],
    ["cases", "post"],
    ["cases", "list"],
    ["cases", "show"],
    ["cases", "transition"],
    ["cases", "overdue"],
    ["outbox"],
    ["outbox", "deliver"],
    ["outbox", "status"],
    ["outbox", "requeue"],
    ["evidence", "gc"],
    ["db", "upgrade"],
    ["db", "current"],
    ["report"],
]


def test_every_ledger_command_has_help(capsys):
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert {"cases", "outbox", "evidence", "db", "report"} <= set(sub.choices)
    for cmd in LEDGER_COMMANDS:
        with pytest.raises(SystemExit) as e:
            main([*cmd, "--help"])
        assert e.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith("usage: streetorder " + " ".join(cmd)) and len(out) > 200, cmd


@pytest.mark.slow
def test_post_list_show_transition_overdue_report(db_url, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("STREETORDER_DB", db_url)
    monkeypatch.chdir(tmp_path)  # default evidence dir var/evidence lands here
    batch = tmp_path / "batch.jsonl"
    reports = [incident(tmp_path, "a"), incident(tmp_path, "b", camera_id="cam-2"), incident(tmp_path, "c", type="garbage", point="P-9")]
    batch.write_text("\n".join(r.model_dump_json() for r in reports) + "\nnot json\n", encoding="utf-8")

    assert main(["cases", "post", str(batch)]) == 1  # the bad line fails, the others go in
    out, err = capsys.readouterr()
    (a, _, _, x, what_a), (b, _, _, y, what_b), (c, _, _, z, what_c) = (line.split() for line in out.splitlines())
    assert (a, what_a, b, what_b, c, what_c) == ("a", "created", "b", "merged", "c", "created")
    assert x == y != z
    assert f"{batch}:4:" in err and "1 incident(s) failed" in err
    assert main(["cases", "post", str(batch)]) == 1
    assert capsys.readouterr().out.count("unchanged") == 3

    assert main(["cases", "list", "--json"]) == 0
    cases = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(c["type"], c["incident_ids"]) for c in cases] == [("street_vending", ["a", "b"]), ("garbage", ["c"])]
    vending = cases[0]["id"]

    assert main(["cases", "transition", str(vending), "dispatched", "--actor", "chief", "--owner", "owner-li"]) == 0
    assert "is now dispatched, due" in capsys.readouterr().out
    [decision] = Annotations(Database(db_url)).history(vending)  # a decision from the CLI is in the annotation log too
    assert (decision.action, decision.reviewer, decision.source) == ("dispatch", "chief", "cli")
    assert main(["cases", "transition", str(vending), "closed", "--actor", "chief"]) == 2
    assert "cannot move from 'dispatched' to 'closed'" in capsys.readouterr().err
    assert main(["cases", "transition", "9999", "closed", "--actor", "chief"]) == 2
    assert "no case with id 9999" in capsys.readouterr().err

    assert main(["cases", "show", str(vending)]) == 0
    out = capsys.readouterr().out
    assert "detected → dispatched" in out and "by chief" in out and "owner owner-li" in out

    assert main(["cases", "overdue", "--at", "2099-01-01T00:00+08:00"]) == 0
    assert capsys.readouterr().out.split()[0] == str(vending)
    with pytest.raises(SystemExit):
        main(["cases", "overdue", "--at", "2099-01-01T00:00"])
    assert "has no time zone" in capsys.readouterr().err

    assert main(["cases", "list", "--status", "dispatched"]) == 0
    assert "owner=owner-li" in capsys.readouterr().out

    month = reports[0].first_seen.strftime("%Y-%m")
    assert main(["report", "--month", month, "--out", str(tmp_path / "rep")]) == 0
    assert (tmp_path / "rep" / f"report-{month}.html").is_file() and (tmp_path / "rep" / f"report-{month}.csv").is_file()

    assert main(["evidence", "gc", "--dry-run"]) == 0
    assert "would delete 0 unreferenced file(s); kept 3 referenced" in capsys.readouterr().out
    assert main(["db", "current"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert main(["outbox", "deliver", "--once"]) == 2
    assert "no delivery channel configured" in capsys.readouterr().err


@pytest.mark.slow
def test_outbox_deliver_once_and_status(db_url, tmp_path, capsys, monkeypatch):
    from .test_outbox import SECRET, Receiver

    receiver = Receiver()
    receiver.down = False
    try:
        cfg = tmp_path / "ledger.yaml"
        cfg.write_text(yaml.safe_dump({"database_url": db_url, "evidence_dir": str(tmp_path / "ev"), "webhook": {"url": receiver.url, "secret": SECRET}}))
        batch = tmp_path / "batch.json"
        batch.write_text(json.dumps([json.loads(incident(tmp_path, f"i{n}", point=f"P{n}").model_dump_json()) for n in range(3)]))
        assert main(["cases", "post", str(batch), "--ledger", str(cfg)]) == 0
        assert main(["outbox", "status", "--ledger", str(cfg)]) == 0
        assert capsys.readouterr().out.splitlines()[-1].split() == ["webhook", "pending", "3"]
        assert main(["outbox", "deliver", "--once", "--ledger", str(cfg)]) == 0
        assert "sent 3, failed 0" in capsys.readouterr().out
        assert len(receiver.accepted) == 3
        assert main(["outbox", "status", "--ledger", str(cfg)]) == 0
        assert capsys.readouterr().out.split() == ["webhook", "delivered", "3"]
    finally:
        receiver.close()


def test_db_upgrade_on_a_fresh_file(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/fresh.db"
    assert main(["db", "current", "--db", url]) == 0
    assert "empty" in capsys.readouterr().out
    assert main(["db", "upgrade", "--db", url]) == 0
    from pipeline.db.engine import head_revision

    assert capsys.readouterr().out.strip().endswith(f"empty → {head_revision()}")

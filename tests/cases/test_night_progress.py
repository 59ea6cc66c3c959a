"""The night job's progress in the ledger: posted in one transaction with the cases, and where a unit resumes."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import func, select

from pipeline.cases import LedgerError
from pipeline.db.tables import CaseIncident, NightProgress
from pipeline.night.messages import Checkpoint
from pipeline.night.progress import ProgressBook
from pipeline.night.units import Counts, Job, Source, Unit

from .factory import incident

START = datetime(2026, 11, 20, 22, 0, tzinfo=timezone.utc)


def unit(sizes=("100", "200", "300")) -> Unit:
    return Unit("cam-1", tuple(Source(f"/f/cam-1/v{i}.mp4", "video", size, start=START) for i, size in enumerate(sizes)))


def ckpt(item: int, status: str, position: float = 0.0, frames: int = 10, u: Unit | None = None) -> Checkpoint:
    src = (u or unit()).sources[item]
    return Checkpoint("cam-1", item, src.key, src.fingerprint, status, position, Counts(frames=frames), f"state-{item}-{position}".encode())


def test_cases_and_progress_commit_together_and_a_refused_report_alone_is_dropped(store, tmp_path):
    book = ProgressBook(store.db, "night-1")
    good = [incident(tmp_path, f"inc-{i}", point=f"P-{i}") for i in range(2)]
    bad = incident(tmp_path, "inc-bad", point="P-9").model_copy(update={"box": (10, 10, 5, 5)})  # refused before the transaction
    retyped = good[0].model_copy(update={"type": "garbage"})  # refused inside it: rolled back to its savepoint
    results = store.post_incidents([good[0], bad, retyped, good[1]], also=lambda s: book.record(s, ckpt(0, "partial", 60.0)))
    assert isinstance(results[1], LedgerError) and isinstance(results[2], LedgerError) and "belongs to case" in str(results[2])
    assert results[0].created and results[3].created
    with store.db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(CaseIncident)) == 2
        row = s.get(NightProgress, ("night-1", "/f/cam-1/v0.mp4"))
        assert (row.status, row.position, row.frames, row.state) == ("partial", 60.0, 10, b"state-0-60.0")

    def broken(s):
        book.record(s, ckpt(0, "partial", 120.0))
        raise RuntimeError("killed between the cases and the progress")

    with pytest.raises(RuntimeError):
        store.post_incidents([incident(tmp_path, "inc-3", point="P-3")], also=broken)
    with store.db.transaction() as s:  # neither the case nor the progress
        assert s.scalar(select(func.count()).select_from(CaseIncident)) == 2
        assert s.get(NightProgress, ("night-1", "/f/cam-1/v0.mp4")).position == 60.0


def test_where_a_unit_resumes(store):
    book = ProgressBook(store.db, "night-1")
    u = unit()
    assert book.plan(u).resume is None  # nothing recorded: from the start

    def record(c: Checkpoint) -> None:
        store.post_incidents([], also=lambda s: book.record(s, c))

    record(ckpt(0, "partial", 300.0))
    plan = book.plan(u)
    assert (plan.resume.item, plan.resume.position, plan.resume.state, plan.done_before) == (0, 300.0, None, 0)
    assert book.with_state(Job(u, plan.resume)).resume.state == b"state-0-300.0"  # read only as the unit starts

    record(ckpt(0, "done", 0.0, frames=5))
    record(ckpt(1, "partial", 60.0))
    plan = book.plan(u)
    assert (plan.resume.item, plan.resume.position, plan.done_before) == (1, 60.0, 1)
    with store.db.transaction() as s:  # only the unit's latest record keeps the engine state
        states = dict(s.execute(select(NightProgress.source, NightProgress.state)).all())
        frames = dict(s.execute(select(NightProgress.source, NightProgress.frames)).all())
    assert states == {"/f/cam-1/v0.mp4": None, "/f/cam-1/v1.mp4": b"state-1-60.0"}
    assert frames["/f/cam-1/v0.mp4"] == 15  # frames add up over the records of a source

    record(ckpt(1, "failed", 0.0))
    record(ckpt(2, "done", 0.0))
    plan = book.plan(u)
    assert plan.finished and plan.done_before == 3 and "in an earlier run" in plan.failed_before[0]["error"]

    changed = unit(sizes=("100", "999", "300"))  # a video was replaced: that camera again from the start
    assert book.plan(changed).resume is None
    with store.db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(NightProgress)) == 0
    assert ProgressBook(store.db, "night-2").plan(u).resume is None  # another night knows nothing of this one

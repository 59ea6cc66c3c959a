"""The report journal: entries come back after a crash in order, finished ones do not, a torn line is skipped."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from pipeline.domain import IncidentReport, Location
from pipeline.live.report_queue import ReportQueue

T = datetime(2026, 11, 21, 1, 0, tzinfo=UTC)


def report(i: int) -> IncidentReport:
    return IncidentReport(incident_id=f"inc-{i}", type="garbage", source="patrol", location=Location(district="d", point=f"p{i}"), first_seen=T, last_seen=T + timedelta(seconds=i), score=0.5)


def test_entries_survive_a_reopen_in_order_and_finished_ones_do_not(tmp_path):
    path = tmp_path / "var" / "journal.jsonl"
    q = ReportQueue(path)
    for i in range(3):
        q.add_report(report(i))
    q.add_frame("cam-1", T + timedelta(seconds=9))
    assert q.persist() == 4 and q.persist() == 0
    q.done(q.pending[0])  # inc-0 reached the ledger
    with path.open("ab") as f:
        f.write(b'{"seq": 99, "queued_at": "2026-11-')  # a crash in the middle of a write
    again = ReportQueue(path)  # the restart
    assert [e.incident_id for e in again.reports] == ["inc-1", "inc-2"]
    assert again.reports[1].report() == report(2)
    assert again.frame_marks() == {"cam-1": T + timedelta(seconds=9)}
    assert len(path.read_text().splitlines()) == 3  # rewritten without the finished entry and the torn line
    again.add_report(report(5))
    again.persist()
    assert json.loads(path.read_text().splitlines()[-1])["seq"] > max(e.seq for e in list(again.pending)[:-1])


def test_the_file_is_emptied_once_everything_is_done_and_memory_entries_never_touch_it(tmp_path):
    path = tmp_path / "journal.jsonl"
    q = ReportQueue(path)
    q.add_report(report(0))
    q.persist()
    q.add_report(report(1))  # not persisted: posted at once, never journaled
    q.done(q.pending[0])
    assert path.read_text() == ""
    q.done(q.pending[0])
    assert path.read_text() == "" and len(q) == 0
    assert len(ReportQueue(path)) == 0
    memory = ReportQueue()
    memory.add_report(report(0))
    assert memory.persist() == 0 and len(memory) == 1


def test_leading_frame_times_leave_together_and_a_reopen_keeps_the_rest(tmp_path):
    q = ReportQueue(tmp_path / "j.jsonl")
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    frames = [q.add_frame("cam-1", t0 + timedelta(seconds=i)) for i in range(5)]
    queued = q.add_report(report(1))
    q.add_frame("cam-1", t0 + timedelta(seconds=9))
    q.persist()
    assert q.leading_frames(3) == frames[:3] and q.leading_frames(100) == frames  # a report ends the run
    q.done_many(frames[:4])
    again = ReportQueue(tmp_path / "j.jsonl")
    assert [(e.seq, e.is_report) for e in again.pending] == [(5, False), (queued.seq, True), (7, False)]

"""Intake keeps the reports the ledger could not take and posts them first next time; it quarantines the ones it refuses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
from sqlalchemy.exc import OperationalError

from pipeline.cases import CaseStore, LedgerConfig, LedgerError
from pipeline.config import StreetOrderConfig
from pipeline.db.quarantine import quarantined
from pipeline.detect import make_detections
from pipeline.engine import Engine
from pipeline.source.frames import Frame
from pipeline.db.quarantine import quarantined
from pipeline.live.intake import Deferred, Intake

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=timezone(timedelta(hours=8)))
CONFIG = StreetOrderConfig.model_validate({
    "cameras": [{"id": "cam-1", "location": {"district": "拱墅区", "point": "P1"}, "resolution": [640, 480],
                 "zones": [{"id": "np", "kind": "no_parking", "polygon": [[0, 0], [640, 0], [640, 480], [0, 480]]}]}],
    "rules": {"non_motor_parking": {"min_dwell_s": 2, "min_count": 1}},
})
BIKE = make_detections(np.array([[100, 100, 200, 300]]), np.array([0.9]), np.array([0]), ("bicycle",))
IMAGE = np.full((480, 640, 3), 120, np.uint8)


@pytest.fixture
def intake(tmp_path):
    store = CaseStore.open(LedgerConfig(database_url=f"sqlite:///{tmp_path / 'ledger.db'}", evidence_dir=tmp_path / "evidence"))
    yield Intake(Engine(CONFIG, evidence_dir=tmp_path / "engine"), store)
    store.close()


def frame(i: int) -> Frame:
    return Frame(IMAGE, T0 + timedelta(seconds=2 * i), "cam-1")


def test_reports_the_ledger_could_not_take_are_posted_first_on_the_next_frame(intake, monkeypatch):
    intake.frame(frame(0), BIKE)
    real = intake.store.post_incident

    def down(report, **kw):
        raise OperationalError("INSERT", {}, ConnectionError("database is down"))

    monkeypatch.setattr(intake.store, "post_incident", down)
    with pytest.raises(Deferred) as e:
        intake.frame(frame(1), BIKE)
    assert isinstance(e.value.cause, OperationalError) and e.value.queued == 1  # the incident opens here; the engine will not report it again for a while
    assert [r.incident_id for r in intake.backlog] == ["cam-1-non_motor_parking-np-20261121T090000"]

    monkeypatch.setattr(intake.store, "post_incident", real)
    out = intake.frame(frame(2), BIKE)
    assert [(r.incident_id, p.created) for r, p in out.retried] == [("cam-1-non_motor_parking-np-20261121T090000", True)]
    assert intake.backlog == []
    assert len(intake.store.list()) == 1


def test_a_report_the_ledger_refuses_is_quarantined_not_retried_forever(intake, monkeypatch):
    intake.frame(frame(0), BIKE)
    monkeypatch.setattr(intake.store, "post_incident", lambda r, **kw: (_ for _ in ()).throw(OperationalError("x", {}, ConnectionError("down"))))
    with pytest.raises(Deferred):
        intake.frame(frame(1), BIKE)
    monkeypatch.setattr(intake.store, "post_incident", lambda r, **kw: (_ for _ in ()).throw(LedgerError("invalid")))
    out = intake.frame(frame(2), BIKE)  # the backlog's report is refused: quarantined with its reason; this frame has no report
    assert out.retried == [] and intake.backlog == []
    [q] = quarantined(intake.store.db)
    assert q.incident_id == "cam-1-non_motor_parking-np-20261121T090000" and q.reason == "invalid" and q.error_type == "LedgerError"


def test_gated_frames_reuse_the_dispatched_case_list_for_a_minute_of_video(intake, monkeypatch):
    """A frame the change gate marked `reused` does not query the ledger again (one query per minute of video on
    a static scene); any report posted reads it again."""
    calls = []
    real = intake.store.camera_watch
    monkeypatch.setattr(intake.store, "camera_watch", lambda cam: calls.append(cam) or real(cam))

    def reused(i: int) -> Frame:
        return Frame(IMAGE, T0 + timedelta(seconds=2 * i), "cam-1", meta={"reused": True})

    empty = make_detections(np.zeros((0, 4)), np.zeros(0), np.zeros(0), ("bicycle",))
    intake.frame(frame(0), empty)
    for i in range(1, 30):
        intake.frame(reused(i), empty)
    assert len(calls) == 1
    intake.frame(reused(30), empty)  # 60 s after the list was read
    assert len(calls) == 2
    intake.frame(frame(31), empty)  # a detected frame always reads it
    assert len(calls) == 3


def test_a_long_outage_s_frame_times_reach_the_ledger_in_a_few_transactions(intake, tmp_path):
    """A camera journals its frame time with every frame while the ledger is away; a long outage queues tens of
    thousands. Consecutive ones go in one transaction (newest per camera) and one journal write per run."""
    from sqlalchemy import event

    from pipeline.db.frame_marks import last_frames
    from pipeline.live.report_queue import ReportQueue

    intake.queue = ReportQueue(tmp_path / "journal.jsonl")
    for i in range(1200):
        intake.queue.add_frame(f"cam-{i % 2}", T0 + timedelta(seconds=i))
    intake.queue.persist()
    commits: list[int] = []
    event.listen(intake.store.db.engine, "commit", lambda conn: commits.append(1))
    assert len(intake.drain()) == 1200 and not intake.queue.pending
    assert len(commits) == 3  # 500 + 500 + 200, not 1200
    marks = {camera: at.replace(tzinfo=None) for camera, at in last_frames(intake.store.db).items()}
    assert marks == {"cam-0": (T0 + timedelta(seconds=1198)).astimezone(UTC).replace(tzinfo=None), "cam-1": (T0 + timedelta(seconds=1199)).astimezone(UTC).replace(tzinfo=None)}
    assert (tmp_path / "journal.jsonl").read_text() == ""

"""Each camera's engine state in the ledger: a checkpoint restores the camera's dwell timers and open incidents
(and what was reported of them), a stale version never overwrites a newer one, on SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
from datetime import timedelta

import pytest
from sqlalchemy import text

from pipeline.db.engine import Database
from pipeline.engine import Engine
from pipeline.live.camera_state import CameraCheckpoint, CameraStateBook, version_of

from .test_intake import BIKE, CONFIG, T0, frame


@pytest.fixture(params=["sqlite", "postgresql"])
def book(request, tmp_path, tmp_path_factory):
    if request.param == "sqlite":
        template = tmp_path_factory.getbasetemp() / "camera-state-template.db"
        if not template.exists():
            Database(f"sqlite:///{template}").dispose()
        shutil.copy(template, tmp_path / "ledger.db")
        db = Database(f"sqlite:///{tmp_path / 'ledger.db'}")
    else:
        db = Database(request.getfixturevalue("pg_url"))
        with db.transaction() as s:
            s.execute(text("DELETE FROM camera_state"))
    yield CameraStateBook(db)
    db.dispose()


def ckpt(camera_id: str, seconds: float, blob: bytes = b"state") -> CameraCheckpoint:
    return CameraCheckpoint.of(camera_id, T0 + timedelta(seconds=seconds), blob)


def test_a_stale_version_is_refused_and_writes_nothing(book):
    with book.db.transaction() as s:
        assert book.save(s, ckpt("cam-1", 10, b"ten"))
    with book.db.transaction() as s:
        assert not book.save(s, ckpt("cam-1", 4, b"four"))  # a node come back with older state
        assert not book.save(s, ckpt("cam-1", 10, b"ten again"))  # the same version: not newer
    assert book.load("cam-1") == ckpt("cam-1", 10, b"ten")
    with book.db.transaction() as s:
        assert book.save(s, ckpt("cam-1", 12, b"twelve"))
    assert book.load("cam-1").blob == b"twelve" and book.load("cam-1").version == version_of(T0 + timedelta(seconds=12))


def test_a_save_is_part_of_the_callers_transaction(book):
    with pytest.raises(RuntimeError), book.db.transaction() as s:
        assert book.save(s, ckpt("cam-1", 2))
        raise RuntimeError("the reports of that frame failed")
    assert book.load("cam-1") is None


def test_load_all_gives_each_cameras_newest_checkpoint(book):
    with book.db.transaction() as s:
        for camera_id, at in (("cam-1", 2), ("cam-2", 4), ("cam-1", 6)):
            book.save(s, ckpt(camera_id, at, f"{camera_id}@{at}".encode()))
    loaded = book.load_all()
    assert {k: (v.frame_at, v.blob) for k, v in loaded.items()} == {
        "cam-1": (T0 + timedelta(seconds=6), b"cam-1@6"), "cam-2": (T0 + timedelta(seconds=4), b"cam-2@4"),
    }
    assert book.load("cam-3") is None


def test_a_restored_camera_goes_on_with_its_dwell_and_does_not_report_its_incident_again(tmp_path):
    """min_dwell_s is 2 s: the incident opens at frame 1. Restored from frame 0, another engine opens it at
    frame 1 too; restored after frame 1, it only updates it (the reported entry travelled with the state)."""
    whole = Engine(CONFIG)
    opened_at = [i for i in range(4) if whole.process(frame(i), BIKE).opened]
    assert opened_at == [1]

    first = Engine(CONFIG)
    first.process(frame(0), BIKE)
    second = Engine(CONFIG)
    second.restore_camera("cam-1", first.snapshot_camera("cam-1"))
    assert [r.incident_id for r in second.process(frame(1), BIKE).opened] == ["cam-1-non_motor_parking-np-20261121T090000"]

    third = Engine(CONFIG)
    third.restore_camera("cam-1", second.snapshot_camera("cam-1"))
    later = third.process(frame(2), BIKE)
    assert later.reports == [] and len(third.open_incidents()) == 1  # unchanged since reported: nothing to say again
    assert third._reported.keys() == second._reported.keys()


def test_restoring_a_camera_leaves_the_others_alone_and_refuses_another_cameras_state():
    engine = Engine(CONFIG)
    engine.process(frame(0), BIKE)
    empty = Engine(CONFIG).snapshot_camera("cam-1")  # a camera the engine has not seen: an empty state
    engine.restore_camera("cam-1", empty)
    assert "cam-1" not in engine.cameras
    with pytest.raises(ValueError, match="cam-2"):
        engine.restore_camera("cam-2", empty)

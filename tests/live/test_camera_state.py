"""Each camera's engine state in the ledger: a checkpoint restores the camera's dwell timers and open incidents
(and what was reported of them), a stale version never overwrites a newer one, on SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from pipeline.cases import CaseStore, LedgerConfig
from pipeline.config import StreetOrderConfig
from pipeline.db.engine import Database
from pipeline.detect import make_detections
from pipeline.engine import Engine
from pipeline.live.camera_state import CameraCheckpoint, CameraStateBook, version_of
from pipeline.live.intake import Deferred, Intake
from pipeline.live.report_queue import JournalError, ReportQueue
from pipeline.source.frames import Frame

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


def test_a_whole_engine_snapshot_restores_and_an_older_zlib_one_still_does():
    """The night job's checkpoints (`Engine.snapshot`): the packed form restores to the same incidents and dwell,
    and a checkpoint written before it (plain zlib of the pickle) is still taken up by a resumed night."""
    import io
    import pickle
    import zlib

    from pipeline.engine import _StatePickler

    first = Engine(CONFIG)
    first.process(frame(0), BIKE)
    blob = first.snapshot()
    assert blob.startswith(b"SOeng1")
    buf = io.BytesIO()
    _StatePickler(buf, set()).dump({"cameras": {c: cam.saved() for c, cam in first.cameras.items()}, "patrol": first.patrol, "reported": first._reported})
    older = zlib.compress(buf.getvalue(), 1)
    for saved in (blob, older):
        engine = Engine(CONFIG)
        engine.restore(saved)
        assert [r.incident_id for r in engine.process(frame(1), BIKE).opened] == ["cam-1-non_motor_parking-np-20261121T090000"]
    with pytest.raises(ValueError, match="not a camera state"):
        Engine(CONFIG).restore_camera("cam-1", blob)


def test_a_best_frame_is_compressed_once_for_every_snapshot_it_is_in(monkeypatch):
    """The night job checkpoints the same open incidents again and again: a best frame whose evidence is not
    written yet is compressed for the first snapshot only, and restores to the same pixels from any of them."""
    import pipeline.engine as engine_module

    big = []
    compress = engine_module.zlib.compress
    monkeypatch.setattr(engine_module.zlib, "compress", lambda data, *a: (big.append(1) if memoryview(data).nbytes >= 2**18 else None, compress(data, *a))[1])
    engine = Engine(CONFIG)
    closer = make_detections(np.array([[90, 90, 230, 330]]), np.array([0.95]), np.array([0]), ("bicycle",))
    for i, dets in enumerate([BIKE, BIKE, closer]):  # opened and reported at 1; a better frame at 2, not reported yet
        engine.process(frame(i), dets)
    [cam] = engine.cameras.values()
    pending = [inc.best for inc in cam.incidents.open if id(inc.best) not in engine._written(cam.incidents.open)]
    first = engine.snapshot()
    compressed = len(big)
    second = engine.snapshot()
    assert compressed >= 1 and len(big) == compressed  # the frame (900 KB) compressed for the first only
    for blob in (first, second):
        restored = Engine(CONFIG)
        restored.restore(blob)
        [again] = restored.cameras.values()
        images = [inc.best.image for inc in again.incidents.open if inc.best is not None and inc.best.image is not None]
        assert len(images) == len(pending) and all(np.array_equal(a, b.image) for a, b in zip(images, pending))
        assert all(im.flags.writeable for im in images)
    assert pending, "the test needs a best frame whose evidence is not written yet"


def test_a_grey_best_frame_is_kept_as_one_channel_and_restores_whole(monkeypatch):
    """An infrared night camera's frames are grey (three equal channels): a checkpoint compresses one channel of
    a pending best frame, a third of the bytes, and restores all three; a colour frame keeps all three."""
    import pipeline.engine as engine_module
    from pipeline.engine import _is_grey

    compressed = []
    compress = engine_module.zlib.compress
    monkeypatch.setattr(engine_module.zlib, "compress", lambda data, *a: (compressed.append(memoryview(data).nbytes), compress(data, *a))[1])

    rng = np.random.default_rng(7)
    grey = np.repeat(rng.integers(0, 255, (480, 640, 1), dtype=np.uint8), 3, axis=2)
    colour = grey.copy()
    colour[300, 200, 1] += 1  # one pixel off grey, in a row the first look at a row in 32 skips
    assert _is_grey(grey) and not _is_grey(colour) and not _is_grey(grey[..., 0])
    frames = {}
    for name, image in (("grey", grey), ("colour", colour)):
        compressed.clear()
        engine = Engine(CONFIG)
        closer = make_detections(np.array([[90, 90, 230, 330]]), np.array([0.95]), np.array([0]), ("bicycle",))
        for i, dets in enumerate([BIKE, BIKE, closer]):  # opened and reported at 1; a better frame at 2, not reported yet
            engine.process(Frame(image, T0 + timedelta(seconds=2 * i), "cam-1"), dets)
        blob = engine.snapshot()
        frames[name] = [n for n in compressed if n >= 640 * 480]
        restored = Engine(CONFIG)
        restored.restore(blob)
        [cam] = restored.cameras.values()
        bests = [inc.best.image for inc in cam.incidents.open if inc.best is not None and inc.best.image is not None]
        assert bests and all(np.array_equal(b, image) and b.flags.writeable for b in bests)
    assert frames == {"grey": [640 * 480], "colour": [640 * 480 * 3]}


# ---- the intake: when a camera's state is checkpointed, and where it waits during an outage ----------------

EMPTY = make_detections(np.zeros((0, 4)), np.zeros(0), np.zeros(0), ("bicycle",))


@pytest.fixture
def make_intake(tmp_path):
    """Intakes on one SQLite ledger and one journal, as one service restarted is."""
    store = CaseStore.open(LedgerConfig(database_url=f"sqlite:///{tmp_path / 'ledger.db'}", evidence_dir=tmp_path / "evidence"))

    def make(**kw) -> Intake:
        queue = ReportQueue(tmp_path / "journal.jsonl")
        return Intake(Engine(CONFIG, evidence_dir=tmp_path / "engine"), store, queue=queue, mark_frames=True, pool=None, states=CameraStateBook(store.db), **kw)

    yield make
    store.close()


def test_a_frame_with_reports_saves_the_state_with_them_else_every_state_every_s(make_intake):
    intake = make_intake(state_every_s=5)
    saved = []
    for i in range(7):
        intake.frame(frame(i), EMPTY if i < 4 else BIKE)  # the bike from frame 4: the incident opens at frame 5
        saved.append(intake.states.load("cam-1").frame_at)
    assert [round((at - T0).total_seconds()) for at in saved] == [0, 0, 0, 6, 6, 10, 10]
    assert intake.states.load("cam-1").version == version_of(frame(5).at)


def test_a_graceful_stop_checkpoints_each_camera_at_its_last_frame(make_intake):
    intake = make_intake()
    for i in range(3):
        intake.frame(frame(i), EMPTY)
    assert intake.states.load("cam-1").frame_at == frame(0).at  # 4 s of the 10 s interval
    intake.flush()
    assert intake.states.load("cam-1").frame_at == frame(2).at


def test_the_state_goes_in_the_transaction_of_its_frames_reports(make_intake, monkeypatch):
    intake = make_intake()
    intake.frame(frame(0), BIKE)
    down = OperationalError("INSERT INTO camera_state", {}, ConnectionError("gone"))
    monkeypatch.setattr(intake.states, "save", lambda s, ckpt: (_ for _ in ()).throw(down))
    with pytest.raises(Deferred):
        intake.frame(frame(1), BIKE)  # the incident opens here
    assert intake.store.list() == []  # its report was rolled back with the state
    monkeypatch.undo()
    intake.frame(frame(2), BIKE)  # the queue first: frame 1's report, its frame time and its state, together
    assert len(intake.store.list()) == 1 and intake.states.load("cam-1").frame_at == frame(1).at


def test_during_an_outage_the_journal_keeps_the_newest_state_and_a_restart_takes_it_up(make_intake, tmp_path):
    """The ledger's state is from before the outage; the journal's goes with the reports acknowledged since:
    a restart restores that one, the incident the outage opened is not opened again, and the ledger gets the
    state once the reports before it are in."""
    first = make_intake(state_every_s=2)
    first.frame(frame(0), BIKE)
    first.hold = lambda: "the database is away"
    for i in (1, 2):
        with pytest.raises(Deferred) as e:
            first.frame(frame(i), BIKE)  # frame 1 opens the incident
        assert e.value.durable
    states = tmp_path / "journal.jsonl.states"
    assert len(list(states.iterdir())) == 1  # only the camera's newest
    assert first.states.load("cam-1").frame_at == frame(0).at
    del first  # kill -9: nothing more runs

    second = make_intake(state_every_s=2)
    assert {c: ck.frame_at for c, ck in second.queue.states().items()} == {"cam-1": frame(2).at}
    assert second.restore(second.queue.states()) == ["cam-1"]
    out = second.frame(frame(3), BIKE)
    assert out.frame.reports == [] and [r.incident_id for r, _ in out.retried] == ["cam-1-non_motor_parking-np-20261121T090000"]
    assert len(second.store.list()) == 1 and second.states.load("cam-1").frame_at == frame(3).at
    assert list(states.iterdir()) == [] and (tmp_path / "journal.jsonl").read_text() == ""


def test_a_crash_between_a_state_file_and_its_journal_line_keeps_the_older_state(tmp_path, monkeypatch):
    journal = tmp_path / "journal.jsonl"
    queue = ReportQueue(journal)
    queue.add_frame("cam-1", T0, CameraCheckpoint.of("cam-1", T0, b"one"))
    queue.persist()
    queue.add_frame("cam-1", T0 + timedelta(seconds=2), CameraCheckpoint.of("cam-1", T0 + timedelta(seconds=2), b"two"))
    monkeypatch.setattr(queue, "_append", lambda data: (_ for _ in ()).throw(OSError("disk gone")))
    with pytest.raises(JournalError):
        queue.persist()  # the state file is written, its line is not: the frame was never acknowledged
    monkeypatch.undo()

    again = ReportQueue(journal)
    assert {c: ck.blob for c, ck in again.states().items()} == {"cam-1": b"one"}
    assert len(list((tmp_path / "journal.jsonl.states").iterdir())) == 1
    again.add_frame("cam-1", T0 + timedelta(seconds=4), CameraCheckpoint.of("cam-1", T0 + timedelta(seconds=4), b"three"))
    again.persist()
    assert {c: ck.blob for c, ck in ReportQueue(journal).states().items()} == {"cam-1": b"three"}
    again.done_many(list(again.pending))
    assert list((tmp_path / "journal.jsonl.states").iterdir()) == [] and again.states() == {}


def test_a_static_scene_comes_back_exactly_and_goes_on_as_if_never_stopped():
    """A no_vending zone reads the static scene: its float pictures travel raw (out of zlib), bit for bit."""
    config = StreetOrderConfig.model_validate({
        "cameras": [{"id": "cam-1", "location": {"district": "拱墅区", "point": "P1"}, "resolution": [640, 480],
                     "zones": [{"id": "pavement", "kind": "no_vending", "polygon": [[0, 0], [640, 0], [640, 480], [0, 480]]}]}],
    })
    rng = np.random.default_rng(0)
    street = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)

    def image(i: int) -> np.ndarray:
        out = (street.astype(np.int16) + rng.integers(-3, 4, street.shape)).clip(0, 255).astype(np.uint8)
        if i >= 3:
            out[200:320, 250:400] = (40, 160, 220)  # something new that stays
        return out

    images = [image(i) for i in range(12)]
    whole, first = Engine(config), Engine(config)
    for i in range(6):
        whole.process(Frame(images[i], T0 + timedelta(seconds=2 * i), "cam-1"), EMPTY)
        first.process(Frame(images[i], T0 + timedelta(seconds=2 * i), "cam-1"), EMPTY)
    blob = first.snapshot_camera("cam-1")
    second = Engine(config)
    second.restore_camera("cam-1", blob)
    for i in range(6, 12):
        whole.process(Frame(images[i], T0 + timedelta(seconds=2 * i), "cam-1"), EMPTY)
        second.process(Frame(images[i], T0 + timedelta(seconds=2 * i), "cam-1"), EMPTY)
    a, b = whole.cameras["cam-1"].static, second.cameras["cam-1"].static
    assert a.long is not None and np.isfinite(a.fg_since).any() and a.static_s.max() > 0  # something new, timed as it stands
    for name in ("long", "short", "fg_since", "static_s", "still_seen"):
        assert np.array_equal(getattr(a, name), getattr(b, name), equal_nan=True), name

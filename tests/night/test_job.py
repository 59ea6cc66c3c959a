"""The night job end to end: sample footage and patrol photos through the shipped model into the ledger."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import text

from pipeline.cases import CaseStore, LedgerConfig
from pipeline.db.engine import Database

from tests.cases.conftest import TABLES
from tests.conftest import REPO

pytestmark = pytest.mark.slow

SAMPLES = REPO / "datasets" / "samples" / "footage"
STREETORDER = str(Path(sys.executable).parent / "streetorder")


def run(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([STREETORDER, "run", *args, "--json"], cwd=cwd, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    """One run of the README's main job (defaults), from a scratch working directory."""
    work = tmp_path_factory.mktemp("night")
    r = run(cwd=work)
    assert r.returncode == 0, r.stderr[-2000:]
    return work, json.loads(r.stdout)


def test_sample_night_makes_the_expected_cases(sample_run):
    work, summary = sample_run
    assert summary["failed"] == [] and summary["frames"] == 451 + 601 + 15 and summary["photos"] == 5
    store = CaseStore.open(LedgerConfig(database_url=f"sqlite:///{work / 'var' / 'streetorder.db'}", evidence_dir=work / "var" / "evidence"))
    try:
        cases = store.list()
        lane = [c for c in cases if c.camera_id == "cam-lane"]
        assert len(lane) == 1 and lane[0].type == "garbage"
        patrol = [c for c in cases if c.camera_id is None]
        # patrol_01 and _02 are one pile (8 m, 35 min apart) and sit at the lane camera's point: they join its case
        # or form one of their own; _03 and _04 are two more piles; _05 is a clean street.
        assert all(c.type == "garbage" for c in patrol)
        # the corner camera: a stall set up on the pavement, motorbikes parked along the no-parking kerb
        corner = sorted((c.type, c.zone_id) for c in cases if c.camera_id == "cam-corner")
        assert corner == [("non_motor_parking", "kerb"), ("street_vending", "pavement")]
        assert len(cases) in (5, 6)
        for c in cases:
            kinds = {e.kind for e in store.get(c.id).evidence}
            assert {"best_frame", "crop", "context", "metadata"} <= kinds
            for e in store.get(c.id).evidence:
                assert store.evidence.path(e.sha256).is_file()
    finally:
        store.close()


def test_rerun_is_idempotent(sample_run):
    work, first = sample_run
    again = run(cwd=work)
    assert again.returncode == 0, again.stderr[-2000:]
    second = json.loads(again.stdout)
    assert second["cases_created"] == 0 and first["cases_created"] > 0


def test_bad_files_are_reported_and_the_rest_runs(tmp_path, coco_onnx):
    footage = tmp_path / "footage"
    shutil.copytree(SAMPLES / "cam-walkway", footage / "cam-walkway")
    (footage / "patrol").mkdir()
    shutil.copy(SAMPLES / "patrol" / "patrol_05.jpg", footage / "patrol")
    clip = SAMPLES / "cam-lane" / "lane_20261120_220000.mp4"
    (footage / "cam-lane").mkdir()
    (footage / "cam-lane" / "lane_20261120_230000.mp4").write_bytes(clip.read_bytes()[:20000])  # truncated
    (footage / "cam-lane" / "notes.txt").write_text("not footage")
    (footage / "cam-lane" / "nodate.mp4").write_bytes(clip.read_bytes())
    (footage / "cam-nowhere").mkdir()
    (footage / "stray.jpg").write_bytes(b"x")
    (footage / "patrol" / "blank.jpg").write_bytes(b"")
    r = subprocess.run(
        [STREETORDER, "run", str(footage), "--model", str(coco_onnx), "--db", f"sqlite:///{tmp_path / 'l.db'}", "--json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert r.returncode == 1
    summary = json.loads(r.stdout)
    errors = {Path(f["path"]).name: f["error"] for f in summary["failed"]}
    assert set(errors) == {"lane_20261120_230000.mp4", "notes.txt", "nodate.mp4", "cam-nowhere", "stray.jpg", "blank.jpg"}
    assert "not a readable video" in errors["lane_20261120_230000.mp4"] and "no start time" in errors["nodate.mp4"]
    assert "no camera 'cam-nowhere'" in errors["cam-nowhere"] and "empty file" in errors["blank.jpg"]
    assert summary["frames"] == 15 and summary["photos"] == 1  # the good walkway clip and photo still ran


def test_postgres_ledger(tmp_path, pg_url):
    db = Database(pg_url, auto_upgrade=False)
    with db.engine.begin() as conn:  # the session database is shared with the ledger tests: start empty
        for table in TABLES:  # every ledger table, children first (annotations point at case events)
            conn.execute(text(f"DELETE FROM {table}"))
    db.dispose()
    footage = tmp_path / "footage"
    (footage / "patrol").mkdir(parents=True)
    for p in ("patrol_01.jpg", "patrol_02.jpg"):
        shutil.copy(SAMPLES / "patrol" / p, footage / "patrol")
    r = subprocess.run([STREETORDER, "run", str(footage), "--db", pg_url, "--json"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads(r.stdout)
    assert summary["photos"] == 2 and summary["cases_created"] == 1  # one pile, photographed twice


def test_frames_decoded_before_a_video_breaks_are_still_detected():
    """A truncated video raises after its last good frame; frames waiting for a full batch still go through."""
    import numpy as np

    from pipeline.source.sampling import detect_in_batches
    from pipeline.detect import empty_detections
    from pipeline.source.frames import Frame, VideoError

    class Counting:
        calls: list[int] = []

        def detect(self, images):
            self.calls.append(len(images))
            return [empty_detections() for _ in images]

    def frames():
        for i in range(6):
            yield Frame(np.zeros((8, 8, 3), np.uint8), datetime(2026, 11, 20, 22, 0, i, tzinfo=timezone.utc), "cam")
        raise VideoError("cut.mp4: truncated", 6)

    got, det = [], Counting()
    with pytest.raises(VideoError):
        for frame, _ in detect_in_batches(frames(), det, 4):
            got.append(frame)
    assert len(got) == 6 and det.calls == [4, 2]


def test_the_night_prefetch_bounds_frames_with_their_own_picture_not_the_gates_reuses():
    """The decoder may run far ahead through reused ticks (they share the last detected picture), but never
    holds more than `depth` frames with a picture of their own; its error comes after what it produced."""
    import threading
    import time

    from pipeline.source.frames import Frame
    from pipeline.source.prefetch import prefetched

    lock, produced, consumed, most, lead = threading.Lock(), [0], [0], [0], [0]
    seen = []

    def items():
        for i in range(60):
            lead[0] = max(lead[0], i - len(seen))
            reused = i % 10 != 0
            if not reused:
                with lock:
                    produced[0] += 1
                    most[0] = max(most[0], produced[0] - consumed[0])
            yield Frame(None, datetime(2026, 11, 20, tzinfo=timezone.utc), "cam", meta={"reused": reused, "i": i}), None
        raise ValueError("truncated")

    with pytest.raises(ValueError, match="truncated"):
        for frame, _ in prefetched(items(), depth=2, ahead=64):
            if not frame.meta["reused"]:
                time.sleep(0.02)  # a slow engine: the producer runs ahead meanwhile
                with lock:
                    consumed[0] += 1
            seen.append(frame.meta["i"])
    assert seen == list(range(60))
    assert most[0] <= 2 + 2  # `depth` waiting, the one the engine holds and the one being produced
    assert lead[0] > 8  # while the engine was busy the decoder went on through the reuses

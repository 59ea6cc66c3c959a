"""What checkpointing each camera's engine state costs (`streetorder bench state`): its size, and the time per
frame at a checkpoint interval, on the shipped scenarios (real detections of composed frames: a garbage pile
with its static scene, a heap of parked motorbikes, stalls), through the live intake into a fresh ledger.

Each scenario's frames go through `Intake` twice, interleaved frame by frame on one engine state each: once with
checkpoints every `every_s` (and on every frame that posts reports), once with none; the difference of the
two, per frame, is the checkpoint's cost (snapshot, pickling, compression and the upsert in the transaction).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np

from ..cases import CaseStore, LedgerConfig
from ..config import StreetOrderConfig
from ..detect import Detector
from ..detect.plan import camera_detector
from ..engine import Engine
from ..live.camera_state import CameraStateBook
from ..live.intake import Intake
from ..source.frames import Frame
from .scenarios import Composer, DistinctDetector, Scenario


class _Sizes(CameraStateBook):
    """The book, noting the size of every checkpoint saved."""

    def __init__(self, db) -> None:
        super().__init__(db)
        self.sizes: list[int] = []

    def save(self, s, checkpoint) -> bool:
        self.sizes.append(len(checkpoint.blob))
        return super().save(s, checkpoint)


def measure(scenarios: list[Scenario], detector: Detector, data_root: Path, every_s: float, db_url: str | None = None) -> dict:
    """Per scenario and overall: frames, checkpoints, checkpoint bytes (median, max) and ms per frame with and
    without checkpoints. `db_url`: the ledger to write to (default a fresh SQLite file)."""
    out: dict = {"every_s": every_s, "scenarios": []}
    all_sizes: list[int] = []
    with_ms: list[float] = []
    without_ms: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        url = db_url or f"sqlite:///{Path(tmp) / 'ledger.db'}"
        store = CaseStore.open(LedgerConfig(database_url=url, evidence_dir=Path(tmp) / "evidence"))
        try:
            for n, sc in enumerate(scenarios):
                composer = Composer(sc, data_root)
                w, h = sc.camera.resolution
                det = DistinctDetector(camera_detector(detector, sc.camera, w, h))
                times = np.arange(0.0, sc.duration_s + 1e-9, sc.step_s)
                book = _Sizes(store.db)
                runs = {  # each run its own camera id, so the two never share a state row, a frame time or a case
                    "with": (Intake(Engine(_renamed(sc, f"{n}-with"), evidence_dir=Path(tmp) / f"ev{n}a"), store, mark_frames=True, pool=None, states=book, state_every_s=every_s), []),
                    "without": (Intake(Engine(_renamed(sc, f"{n}-without"), evidence_dir=Path(tmp) / f"ev{n}b"), store, mark_frames=True, pool=None), []),
                }
                for k, t in enumerate(times):
                    image = composer.frame(float(t))
                    dets = det.detect([image])[0]
                    at = sc.start + timedelta(seconds=float(t))
                    for name in (("with", "without") if k % 2 else ("without", "with")):  # alternate who goes first
                        intake, spent = runs[name]
                        frame = Frame(image, at, f"{n}-{name}")
                        t0 = time.perf_counter()
                        intake.frame(frame, dets)
                        spent.append(time.perf_counter() - t0)
                ms_with, ms_without = (1000 * statistics.fmean(runs[k][1]) for k in ("with", "without"))
                with_ms += runs["with"][1]
                without_ms += runs["without"][1]
                all_sizes += book.sizes
                out["scenarios"].append({
                    "name": sc.name, "frames": len(times), "checkpoints": len(book.sizes),
                    "bytes_median": int(statistics.median(book.sizes)) if book.sizes else 0, "bytes_max": max(book.sizes, default=0),
                    "ms_per_frame_with": round(ms_with, 2), "ms_per_frame_without": round(ms_without, 2), "ms_per_frame_checkpoint": round(ms_with - ms_without, 2),
                })
        finally:
            store.close()
    out["frames"] = len(with_ms)
    out["checkpoints"] = len(all_sizes)
    out["bytes_median"] = int(statistics.median(all_sizes)) if all_sizes else 0
    out["bytes_max"] = max(all_sizes, default=0)
    out["ms_per_frame_with"] = round(1000 * statistics.fmean(with_ms), 2)
    out["ms_per_frame_without"] = round(1000 * statistics.fmean(without_ms), 2)
    out["ms_per_frame_checkpoint"] = round(out["ms_per_frame_with"] - out["ms_per_frame_without"], 2)
    return out


def _renamed(sc: Scenario, camera_id: str) -> StreetOrderConfig:
    config = sc.config()
    return config.model_copy(update={"cameras": [config.cameras[0].model_copy(update={"id": camera_id})]})

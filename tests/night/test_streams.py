"""The night job with its detector on streams of its own gives the night the sequential job gives: the same
frames, violations, incidents and cases, with the choice of streams and threads in its summary."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.bench.nightclip import NightLook, Planted, night_gray, write_night_clip
from pipeline.cases import CaseStore, LedgerConfig
from pipeline.config import parse_config
from pipeline.detect import empty_detections, make_detections
from pipeline.night.job import run_batch
from pipeline.night.units import NightSettings
from pipeline.source.images import load_image

from tests.conftest import GARBAGE_CN, STREETS_IN

W, H = 320, 192
CONFIG = """
cameras:
  - id: cam
    location: {district: 西湖区, point: P9}
    resolution: [320, 192]
    zones:
      - {id: walk, kind: garbage_watch, polygon: [[0, 80], [320, 80], [320, 192], [0, 192]]}
rules:
  garbage: {min_dwell_s: 20}
incidents: {end_after_s: 20}
"""


class BrightHeap:
    """A bright blob is 'garbage' (the model has its own tests; this one answers from the pixels, cheaply)."""

    names = ("garbage",)

    def detect(self, images):
        out = []
        for im in images:
            gray = cv2.GaussianBlur(cv2.cvtColor(im, cv2.COLOR_BGR2GRAY), (0, 0), 2)
            n, _, stats, _ = cv2.connectedComponentsWithStats((gray > 140).astype(np.uint8))
            boxes = [(x, y, x + w, y + h) for x, y, w, h, a in stats[1:n] if a >= 100]
            out.append(make_detections(np.array(boxes, float), [0.9] * len(boxes), [0] * len(boxes), self.names) if boxes else empty_detections())
        return out


@pytest.fixture(scope="module")
def footage(tmp_path_factory) -> Path:
    """100 s of a noisy night street at 5 fps with two heaps that stay past the dwell time, one after the other."""
    root = tmp_path_factory.mktemp("streams")
    street = cv2.resize(load_image(STREETS_IN / "images" / "IMG-20240615-WA0055_jpg.jpg"), (W, H), interpolation=cv2.INTER_AREA)
    pile = load_image(GARBAGE_CN / "val" / "images" / "000105_jpg.jpg")[382:637, 65:489]
    heap = cv2.convertScaleAbs(cv2.resize(cv2.cvtColor(pile, cv2.COLOR_BGR2GRAY), (60, 36)), alpha=0.4, beta=160)
    planted = [Planted("a", heap, (40, 120), 11.0, 57.0), Planted("b", heap, (200, 130), 49.0, 93.0)]
    write_night_clip(root / "cam" / "night_20261120_230000.mp4", night_gray(street, gain=0.3, offset=10), planted, seconds=100, fps=5, gop=10,
                     look=NightLook(noise_sigma=4.0, drift_period_s=60.0), bitrate=500_000, preset="ultrafast")
    return root


def _night(footage: Path, work: Path, streams: int, gate: bool) -> tuple[dict, list[tuple]]:
    store = CaseStore.open(LedgerConfig(database_url=f"sqlite:///{work / 'ledger.db'}", evidence_dir=work / "evidence"))
    posted: list = []
    post_many = store.post_incidents
    store.post_incidents = lambda reports, **kw: (posted.extend(reports), post_many(reports, **kw))[1]
    try:
        summary = run_batch(store, parse_config(CONFIG), footage, NightSettings(every_s=2.0, gate=gate, streams=streams), workers=1, fresh=True,
                            progress=False, detector=BrightHeap()).as_dict()
    finally:
        store.close()
    reports = sorted({(r.type, r.zone_id, r.first_seen, r.last_seen, tuple(np.round(r.box or (), 1))) for r in posted})
    return summary, reports


def test_streams_give_the_sequential_night(footage, tmp_path):
    runs = {}
    for streams in (0, 2):  # the change gate on: ticks detected and ticks reused
        (tmp_path / str(streams)).mkdir()
        runs[streams] = _night(footage, tmp_path / str(streams), streams, True)
    base, base_reports = runs[0]
    assert base["frames"] == 50 and base["incidents_opened"] == 2 and base["cases_created"] >= 1 and len(base_reports) >= 2
    for streams in (2,):
        summary, reports = runs[streams]
        assert reports == base_reports
        keys = ("frames", "violations", "incidents_opened", "incidents_ended", "cases_created", "cases_updated")
        assert {k: summary[k] for k in keys} == {k: base[k] for k in keys}
        assert summary["parallelism"]["streams"] == streams and "as set" in summary["parallelism"]["why"]

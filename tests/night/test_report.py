"""The report of the night and bad input: one real `streetorder run` over a night with every kind of bad file.

Every bad file is reported with its reason (in the JSON summary and the HTML report) and the rest of the night
still makes its cases; the HTML shows those cases with embedded thumbnails, a timeline bar per incident, and
needs nothing from the network.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from pipeline.cases import CaseStore, LedgerConfig

from tests.bad_videos import corrupt_middle, tiny_video, truncated_avi, unknown_codec
from tests.conftest import REPO

pytestmark = pytest.mark.slow

SAMPLES = REPO / "datasets" / "samples" / "footage"
LANE = SAMPLES / "cam-lane" / "lane_20261120_220000.mp4"
STREETORDER = str(Path(sys.executable).parent / "streetorder")

# file name -> (outcome, what the reason must say)
BAD = {
    "lane_20261120_230000.mp4": ("failed", r"empty file \(0 bytes\)"),
    "lane_20261120_231000.mp4": ("failed", r"not a readable video"),  # truncated before its index
    "lane_20261120_232000.mp4": ("failed", r"decoding stopped|corrupt|not a readable video"),  # garbled middle
    "lane_20261120_233000.avi": ("failed", r"unknown video codec"),
    "lane_20261120_234000.avi": ("partial", r"truncated, decoded \d+ of 40 frames"),
    "nodate.mp4": ("failed", r"no start time"),
    "notes.txt": ("skipped", r"unsupported file type"),
    "cam-nowhere": ("skipped", r"no camera 'cam-nowhere' in the config"),
    "stray.jpg": ("skipped", r"folder named after their camera id"),
    "blank.jpg": ("failed", r"empty file"),
}


def bad_night(root: Path) -> Path:
    footage = root / "footage"
    lane = footage / "cam-lane"
    lane.mkdir(parents=True)
    shutil.copy(LANE, lane)  # the one good clip: a garbage pile that becomes a case
    (lane / "lane_20261120_230000.mp4").write_bytes(b"")
    (lane / "lane_20261120_231000.mp4").write_bytes(LANE.read_bytes()[:20000])
    corrupt_middle(LANE, lane / "lane_20261120_232000.mp4")
    unknown_codec(lane / "lane_20261120_233000.avi")
    truncated_avi(lane / "lane_20261120_234000.avi", size=(640, 640))
    tiny_video(lane / "nodate.mp4")
    (lane / "notes.txt").write_text("not footage")
    (footage / "cam-nowhere").mkdir()
    tiny_video(footage / "cam-nowhere" / "cam9_20261120_220000.mp4")
    (footage / "stray.jpg").write_bytes(b"x")
    (footage / "patrol").mkdir()
    shutil.copy(SAMPLES / "patrol" / "patrol_03.jpg", footage / "patrol")
    (footage / "patrol" / "blank.jpg").write_bytes(b"")
    return footage


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-night")
    footage = bad_night(root)
    r = subprocess.run(
        [STREETORDER, "run", str(footage), "--db", f"sqlite:///{root / 'ledger.db'}", "--report", str(root / "reports"), "--every", "20", "--json"],
        cwd=root, capture_output=True, text=True, timeout=600,
    )
    assert r.returncode == 1, r.stderr[-3000:]  # some files failed; the night itself went on
    summary = json.loads(r.stdout)
    store = CaseStore.open(LedgerConfig(database_url=f"sqlite:///{root / 'ledger.db'}", evidence_dir=root / "var" / "evidence"))
    yield root, summary, Path(summary["report"]), store
    store.close()


def test_every_bad_file_is_reported_with_its_reason_and_the_rest_runs(night):
    _, summary, _, store = night
    failed = {Path(f["path"]).name: f for f in summary["failed"]}
    assert set(failed) == set(BAD)
    for name, (outcome, reason) in BAD.items():
        assert failed[name]["outcome"] == outcome, (name, failed[name])
        assert re.search(reason, failed[name]["error"]), (name, failed[name]["error"])
    assert failed["lane_20261120_234000.avi"]["frames_used"] > 0  # its frames before the cut were used
    # the good clip and the good photo still made their cases
    cases = store.list()
    assert {c.camera_id for c in cases} == {"cam-lane", None} and all(c.type == "garbage" for c in cases)
    assert summary["cases"] == {str(c.id): "created" for c in cases}
    assert [Path(r["path"]).name for r in summary["read"]] == ["lane_20261120_220000.mp4", "patrol_03.jpg"]


class _Page(HTMLParser):
    """What the tests read off the report: every tag with its attributes, and the text."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parse(path: Path) -> tuple[_Page, str]:
    html = path.read_text(encoding="utf-8")
    page = _Page()
    page.feed(html)
    return page, html


def test_report_shows_the_nights_cases_with_thumbnails_and_timelines(night):
    root, summary, report, store = night
    assert report.is_file() and report.parent == root / "reports" and report.name.startswith("night-")
    page, html = parse(report)
    text = " ".join(page.text)
    cases = store.list()
    assert cases
    for c in cases:
        assert f'id="case-{c.id}"' in html
        imgs = [a for t, a in page.tags if t == "img" and a.get("alt", "").endswith(f"of case {c.id}")]
        assert {a["alt"].split()[0] for a in imgs} == {"crop", "context"}
        assert all(a["src"].startswith("data:image/jpeg;base64,") for a in imgs)
    assert "暴露垃圾 exposed garbage" in text and "北山路12号后巷" in text  # Chinese labels and places, as UTF-8
    # the timeline: one bar per incident of the night, on its camera's section, at its ledger times
    lane = next(c for c in cases if c.camera_id == "cam-lane")
    bars = [a for t, a in page.tags if t == "g" and a.get("class") == "bar"]
    assert {int(b["data-case"]) for b in bars} == {c.id for c in cases}
    lane_bar = next(b for b in bars if int(b["data-case"]) == lane.id)
    assert lane_bar["data-start"] == lane.first_seen.isoformat() and lane_bar["data-incident"] in lane.incident_ids
    assert html.index('id="camera-cam-lane"') < html.index(f'data-case="{lane.id}"') < html.index('id="camera-patrol"')
    # every file not used, with its outcome and reason
    rows = html[html.index('id="failed"'):]
    for name, (outcome, _) in BAD.items():
        assert name in rows
    assert rows.count('class="failed-file"') == len(BAD)
    assert "unknown video codec" in rows and "no camera &#39;cam-nowhere&#39;" in rows


def test_report_needs_no_network(night):
    _, _, report, _ = night
    page, html = parse(report)
    assert not [t for t, _ in page.tags if t in ("script", "link", "iframe", "object", "embed")]
    for tag, attrs in page.tags:
        for k in ("src", "href", "xlink:href", "srcset", "action"):
            v = attrs.get(k)
            assert v is None or v.startswith(("#", "data:")), (tag, k, v[:80])
    assert not re.search(r"url\(\s*['\"]?(?!data:)", html)  # no CSS fetches (fonts, images)
    assert "@import" not in html and '<meta charset="utf-8">' in html


def test_unknown_codec_and_corrupt_videos_are_video_errors(tmp_path):
    """Frame-level: the reasons the night report shows come from `video_frames` itself."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from pipeline.source.frames import VideoError, video_frames

    start = datetime(2026, 11, 20, 22, tzinfo=ZoneInfo("Asia/Shanghai"))
    with pytest.raises(VideoError, match="unknown video codec"):
        list(video_frames(unknown_codec(tmp_path / "q.avi"), start))
    with pytest.raises(VideoError, match=r"decoding stopped|corrupt|not a readable video"):
        list(video_frames(corrupt_middle(LANE, tmp_path / "c.mp4"), start, every_s=0.5))
    assert len(list(video_frames(tiny_video(tmp_path / "ok.mp4"), start, every_s=1.0))) == 3  # the generator itself is sound

"""Frame sources: video sampling by video time, start times, truncated and broken files, EXIF."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from pipeline.source.frames import VideoError, image_frames, photo_metadata, stamp_from_name, video_frames, video_start
from pipeline.source.images import ImageError

from tests.conftest import REPO, VIDEO

TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 11, 20, 22, 0, tzinfo=TZ)
SAMPLES = REPO / "datasets" / "samples" / "footage"


def test_sampling_follows_video_time():
    frames = list(video_frames(VIDEO, START, every_s=2.0, camera_id="cam"))
    assert len(frames) == 40  # 795 frames at 10 fps = 79.5 s, one every 2 s
    assert [(f.at - START).total_seconds() for f in frames[:3]] == [0.0, 2.0, 4.0]
    assert frames[0].image.shape == (576, 768, 3) and frames[0].camera_id == "cam"


def test_low_frame_rate_clip_keeps_real_time():
    clip = SAMPLES / "cam-lane" / "lane_20261120_220000.mp4"
    frames = list(video_frames(clip, video_start(clip, TZ), every_s=10.0))
    assert frames[0].at == START and frames[-1].at == START + timedelta(seconds=900)


def test_start_time_from_name_or_explicit():
    assert stamp_from_name("cam3_20261120_221500.mp4", TZ) == datetime(2026, 11, 20, 22, 15, tzinfo=TZ)
    assert stamp_from_name("2026-11-20T22-15-00.jpg", TZ) == datetime(2026, 11, 20, 22, 15, tzinfo=TZ)
    assert stamp_from_name("cam3_20261399_221500.mp4", TZ) is None  # month 13
    assert video_start(VIDEO, TZ, start=datetime(2026, 1, 1, 8, 0)) == datetime(2026, 1, 1, 8, 0, tzinfo=TZ)
    with pytest.raises(VideoError, match="no start time"):
        video_start(VIDEO, TZ)


def test_truncated_avi_yields_what_decodes_then_says_so(tmp_path):
    cut = tmp_path / "cut.avi"
    cut.write_bytes(VIDEO.read_bytes()[: VIDEO.stat().st_size // 2])
    got = []
    with pytest.raises(VideoError, match=r"truncated, decoded \d+ of 795 frames") as e:
        for f in video_frames(cut, START, every_s=1.0):
            got.append(f)
    assert 30 <= len(got) <= 50 and e.value.frames_read > 300


@pytest.mark.parametrize(
    "content, reason",
    [(b"", "empty file"), (b"\x00" * 5000, "not a readable video"), (None, "no such file")],
)
def test_broken_videos(tmp_path, content, reason):
    path = tmp_path / "bad.mp4"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(VideoError, match=reason):
        list(video_frames(path, START))


def test_truncated_mp4_without_index(tmp_path):
    clip = SAMPLES / "cam-lane" / "lane_20261120_220000.mp4"
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    with pytest.raises(VideoError, match="not a readable video"):
        list(video_frames(cut, START))


def test_patrol_exif_and_snapshot_order(tmp_path):
    at, gps = photo_metadata(SAMPLES / "patrol" / "patrol_02.jpg", TZ)
    assert at == datetime(2026, 11, 20, 21, 40, tzinfo=TZ)
    assert gps.lat == pytest.approx(30.26112, abs=1e-5) and gps.lon == pytest.approx(120.14608, abs=1e-5)
    # snapshots: ordered by capture time, bad files come back in place as errors
    a, b = tmp_path / "snap_20261120_221000.jpg", tmp_path / "snap_20261120_220000.jpg"
    src = (SAMPLES / "patrol" / "patrol_05.jpg").read_bytes()
    a.write_bytes(src)
    b.write_bytes(src)
    nostamp = tmp_path / "nostamp.png"
    nostamp.write_bytes(b"not an image")
    items = list(image_frames([a, b, nostamp], "cam", TZ))
    # patrol_05 has EXIF time 22:05, which wins over the name: both frames are 22:05
    frames = [i for i in items if not isinstance(i, ImageError)]
    assert len(frames) == 2 and all(f.at == datetime(2026, 11, 20, 22, 5, tzinfo=TZ) for f in frames)
    assert isinstance(items[-1], ImageError) and "no capture time" in str(items[-1])


def test_start_time_of_an_unreadable_or_unstamped_file_is_a_video_error(tmp_path):
    bad = tmp_path / "nodate.mp4"
    bad.write_bytes(b"\x00" * 5000)
    with pytest.raises(VideoError, match="not a readable video"):
        video_start(bad, TZ)


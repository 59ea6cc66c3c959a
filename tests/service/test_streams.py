"""`streetorder serve` pulling its cameras' streams itself, against real servers: GStreamer's RTSP server (behind
basic auth) playing H.264 of a street photo with a parked motorbike in cam-1's no-parking zone, an audio-only
RTSP mount (a stream with nothing to decode), and a local HTTP snapshot camera that is not there at first.

One service carries every case at once, as a city would: a dropped stream must not stop the others."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import av
import numpy as np
import yaml
from PIL import Image

from pipeline.cases.config import LedgerConfig
from pipeline.db.engine import Database
from pipeline.live.outages import CameraOutages
from tests.service.conftest import CAMERA_CONFIG, STREET, metric, post_frame
from pipeline.bench.rtsp_server import AUDIO_ONLY, RtspServer, encode_clip, h264_file
from tests.support.serve import free_port
from tests.support.snapshot_server import SnapshotCamera

PASSWORD = "Kp9_stream-pw"
USER = "nvr-reader"



def wait_for(what: Callable[[], object], timeout: float, why: Callable[[], str] | str) -> object:
    end = time.monotonic() + timeout
    while not (got := what()):
        assert time.monotonic() < end, why() if callable(why) else why
        time.sleep(0.1)
    return got


def streams_of(client) -> dict[str, dict]:
    r = client.get("/ready")
    assert r.status_code == 200, r.text  # a camera that is down never makes the service unready
    return {s["camera_id"]: s for s in r.json()["streams"]}


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def first_picture(clip) -> bytes:
    """The clip's first key frame as the stream decodes it, losslessly as PNG, for posting."""
    with av.open(str(clip)) as c:
        frame = next(c.decode(video=0)).to_ndarray(format="rgb24")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(frame)).save(buf, format="PNG")
    return buf.getvalue()


def test_streamed_cameras(make_client, tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("SO_TEST_CAM_USER", USER)
    monkeypatch.setenv("SO_TEST_CAM_PASS", PASSWORD)
    clip = encode_clip(STREET, tmp_path / "street.mp4", fps=5, gop=5, seconds=40)
    rtsp = RtspServer(free_port(), {"/street": h264_file(clip), "/audio": AUDIO_ONLY}, auth=(USER, PASSWORD)).start()
    snapshots = SnapshotCamera(free_port(), STREET.read_bytes())
    fast = {"backoff_s": 0.2, "backoff_max_s": 0.4, "timeout_s": 2}
    cameras = [dict(c) for c in CAMERA_CONFIG["cameras"]]
    cameras[0]["stream"] = {"url": rtsp.url("/street"), "every": 1, "username_env": "SO_TEST_CAM_USER", "password_env": "SO_TEST_CAM_PASS", **fast}
    cameras[1]["stream"] = {"url": snapshots.url, "every": 0.5, "offline_after_s": 1.5, **fast}
    cameras.append({"id": "cam-3", "location": {"district": "西湖区", "point": "P3"}, "resolution": [640, 640], "stream": {
        "url": rtsp.url("/audio"), "username_env": "SO_TEST_CAM_USER", "password_env": "SO_TEST_CAM_PASS", "offline_after_s": 60, **fast}})
    config = tmp_path / "streamed.yaml"
    config.write_text(yaml.safe_dump({**CAMERA_CONFIG, "cameras": cameras}, allow_unicode=True, sort_keys=False), encoding="utf-8")
    try:
        client = make_client(camera_config=config)
        outages = CameraOutages(client.app.state.service.store.db)

        # cam-1: the parked motorbike stands its 2 s dwell in the stream's samples: a case, as with posted frames
        cases = wait_for(lambda: client.get("/cases", params={"camera_id": "cam-1"}).json()["cases"], 20, lambda: f"no case from the stream: {streams_of(client)}")
        # cam-2: no snapshot server yet: offline after 1.5 s, one outage in the ledger; cam-3: audio only, a clear error
        wait_for(lambda: streams_of(client)["cam-2"]["state"] == "offline" and outages.list(open_only=True), 10, lambda: f"{streams_of(client)}")
        streams = streams_of(client)
        assert streams["cam-1"]["state"] == "up" and streams["cam-1"]["decode_mode"] == "keyframes" and streams["cam-1"]["codec"] == "h264"
        assert streams["cam-3"]["state"] == "down" and "no video track" in streams["cam-3"]["last_error"]
        assert "refused" in streams["cam-2"]["last_error"].lower() or "connect" in streams["cam-2"]["last_error"].lower(), streams["cam-2"]
        [outage] = outages.list()
        assert (outage.camera_id, outage.district, outage.point, outage.stream_kind, outage.ended_at) == ("cam-2", "西湖区", "P2", "http", None)
        assert (outage.reported_at - outage.down_since).total_seconds() >= 1.5

        # a stream that never comes up holds nothing of the others: cam-1 goes on
        samples = streams_of(client)["cam-1"]["samples"]
        wait_for(lambda: streams_of(client)["cam-1"]["samples"] >= samples + 2, 5, lambda: f"{streams_of(client)}")

        # cam-1 drops: down on /ready (the service stays ready); meanwhile cam-2's camera comes up, and its outage is
        # closed by its first picture; cam-1 comes back: up, reconnected
        samples = streams_of(client)["cam-1"]["samples"]
        rtsp.stop()
        wait_for(lambda: streams_of(client)["cam-1"]["state"] == "down", 10, lambda: f"{streams_of(client)}")
        text = client.get("/metrics").text
        assert metric(text, "streetorder_stream_state", 'camera="cam-1",state="down"') == 1
        assert metric(text, "streetorder_stream_state", 'camera="cam-2",state="offline"') == 1
        assert metric(text, "streetorder_stream_samples_total", 'camera="cam-1"') >= samples
        assert metric(text, "streetorder_stream_intake_total", 'camera="cam-1",outcome="processed"') >= 3
        assert metric(text, "streetorder_stream_down_seconds", 'camera="cam-2"') >= 1.5
        snapshots.start()
        wait_for(lambda: streams_of(client)["cam-2"]["state"] == "up", 10, lambda: f"{streams_of(client)}")
        wait_for(lambda: not outages.list(open_only=True), 5, "the outage was not closed")
        [outage] = outages.list()  # still the only one
        assert outage.ended_at >= outage.reported_at
        assert streams_of(client)["cam-1"]["state"] == "down"
        rtsp.start()
        wait_for(lambda: streams_of(client)["cam-1"]["state"] == "up", 15, lambda: f"{streams_of(client)}")
        wait_for(lambda: streams_of(client)["cam-1"]["samples"] > samples + 1, 5, lambda: f"{streams_of(client)}")
        assert streams_of(client)["cam-1"]["reconnects"] >= 1

        ready, metrics_text = client.get("/ready").text, client.get("/metrics").text
        streamed = client.get("/cases", params={"camera_id": "cam-1"}).json()["cases"]
        assert len(streamed) == 1  # the drop did not open a second case for the same motorbike
    finally:
        rtsp.stop()
        snapshots.stop()
    for text in (caplog.text, ready, metrics_text):
        assert PASSWORD not in text and f"{USER}:" not in text
    assert "cam-1" in caplog.text and "-> down" in caplog.text

    # the same frames POSTed to a service of their own (streams off, its own ledger) give the same incident
    case = streamed[0]
    posted = make_client(
        role=None, camera_config=config, streams=False, insecure_open=True, journal=tmp_path / "journal-2.jsonl",
        ledger=LedgerConfig(database_url=f"sqlite:///{_fresh_ledger(tmp_path)}", evidence_dir=tmp_path / "evidence-2", auto_upgrade=False),
    )
    picture = first_picture(clip)
    at = datetime.fromisoformat(case["first_seen"])
    for i in range(4):
        r = post_frame(posted, picture, at + timedelta(seconds=i))
        assert r.status_code == 200, r.text
    [same] = posted.get("/cases", params={"camera_id": "cam-1"}).json()["cases"]
    keys = ("type", "camera_id", "zone_id", "location", "owner", "first_seen")
    assert {k: same[k] for k in keys} == {k: case[k] for k in keys}
    assert iou(same["box"], case["box"]) > 0.95


def _fresh_ledger(tmp_path):
    path = tmp_path / "ledger-posted.db"
    Database(f"sqlite:///{path}").dispose()
    return path

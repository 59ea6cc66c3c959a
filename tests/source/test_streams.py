"""The stream reader against real servers: GStreamer's RTSP server playing H.264 made from a street photo, an
audio-only RTSP mount (a stream with no video to decode), a closed port, and a local HTTP snapshot camera."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

import pytest

from pipeline.cli import main
from pipeline.config import ConfigError, StreamConfig, parse_config
from pipeline.source.streams import StreamReader, StreamState, StreamStatus
from tests.conftest import STREETS_IN
from pipeline.bench.rtsp_server import AUDIO_ONLY, RtspServer, encode_clip, h264_file
from tests.support.serve import free_port
from tests.support.snapshot_server import SnapshotCamera

STREET = STREETS_IN / "images" / "IMG20240615122056_jpg.jpg"
PASSWORD = "Zq7-secret-pw"



@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, str]:
    """Key frames every 0.5 s (the cheap path at every_s >= 0.5) and every 1 s (too rare for every_s 0.25)."""
    folder = tmp_path_factory.mktemp("clips")
    return {
        "/street": h264_file(encode_clip(STREET, folder / "gop05.mp4", fps=10, gop=5, seconds=20)),
        "/rare": h264_file(encode_clip(STREET, folder / "gop1.mp4", fps=10, gop=10, seconds=20)),
        "/audio": AUDIO_ONLY,
    }


class Recorder:
    """A sink that keeps what it is handed, on the reader's own thread."""

    def __init__(self) -> None:
        self.samples: list[tuple[datetime, tuple]] = []
        self.changes: list[tuple[StreamState, StreamState]] = []

    def sample(self, camera_id: str, at: datetime, image) -> None:
        self.samples.append((at, image.shape))

    def state_changed(self, status: StreamStatus, previous: StreamState) -> None:
        self.changes.append((previous, status.state))


def running(reader: StreamReader, sink: Recorder):
    stop = threading.Event()
    thread = threading.Thread(target=reader.run, args=(sink, stop), daemon=True)
    thread.start()
    return stop, thread


def wait_for(what: Callable[[], bool], timeout: float, why: str) -> None:
    end = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < end, why
        time.sleep(0.05)


def test_rtsp_key_frames_drop_and_reconnect(clips, caplog):
    """Key frames every 0.5 s and every_s 0.5: key frames alone are decoded. The server goes away (down, an error,
    retries with backoff) and comes back on the same port (up again, samples go on, in time order)."""
    port = free_port()
    server = RtspServer(port, clips).start()
    reader = StreamReader("cam-a", StreamConfig(url=server.url("/street"), every_s=0.5, backoff_s=0.2, backoff_max_s=0.5, timeout_s=2, offline_after_s=60))
    sink = Recorder()
    stop, thread = running(reader, sink)
    try:
        wait_for(lambda: reader.status.samples >= 4, 15, f"no samples: {reader.status}")
        st = reader.status
        assert st.state == StreamState.UP and st.codec == "h264" and st.decode_mode == "keyframes" and st.keyframe_interval_s == pytest.approx(0.5)
        decoded = st.decoded
        wait_for(lambda: reader.status.samples >= st.samples + 2, 5, "samples stopped")
        assert reader.status.decoded - decoded == reader.status.samples - st.samples  # one decoded frame per sample
        assert sink.samples[-1][1] == (640, 640, 3)
        gaps = [(b[0] - a[0]).total_seconds() for a, b in zip(sink.samples[1:], sink.samples[2:])]
        assert all(0.4 <= g <= 0.7 for g in gaps), gaps

        server.stop()
        wait_for(lambda: reader.status.state == StreamState.DOWN, 10, f"not down after the server stopped: {reader.status}")
        assert reader.status.last_error and reader.status.down_since == sink.samples[-1][0]
        before = len(sink.samples)
        server.start()
        wait_for(lambda: len(sink.samples) > before + 1, 15, f"no samples after the server came back: {reader.status}")
        st = reader.status
        assert st.state == StreamState.UP and st.reconnects >= 1 and st.failures >= 1 and st.down_since is None
        times = [at for at, _ in sink.samples]
        assert times == sorted(times) and len(set(times)) == len(times)
        assert (StreamState.UP, StreamState.DOWN) in sink.changes and sink.changes[-1] == (StreamState.DOWN, StreamState.UP)
    finally:
        stop.set()
        thread.join(10)
        server.stop()
    assert not thread.is_alive()
    assert "cam-a" in caplog.text and "up -> down" in caplog.text


def test_rtsp_rare_key_frames_decode_every_frame(clips):
    """Key frames every 1 s, a sample wanted every 0.25 s: `auto` measures it and decodes every frame."""
    with RtspServer(free_port(), clips) as server:
        reader = StreamReader("cam-b", StreamConfig(url=server.url("/rare"), every_s=0.25, timeout_s=2))
        sink = Recorder()
        stop, thread = running(reader, sink)
        try:
            wait_for(lambda: reader.status.decode_mode is not None and reader.status.samples >= 6, 15, f"{reader.status}")
        finally:
            stop.set()
            thread.join(10)
    st = reader.status
    assert st.decode_mode == "all" and st.keyframe_interval_s == pytest.approx(1.0)
    assert st.decoded > st.samples * 2  # every frame decoded (10 fps), one in ~2.5 kept


def test_wrong_codec_and_never_up_go_offline_once(clips, caplog):
    """An RTSP URL that carries audio only, and a port nobody listens on: each is a clear error state, then
    offline after offline_after_s, announced once however often the retries fail. Nothing raises."""
    caplog.set_level(logging.INFO)
    with RtspServer(free_port(), clips) as server:
        audio = StreamReader("cam-audio", StreamConfig(url=server.url("/audio"), every_s=1, backoff_s=0.1, backoff_max_s=0.2, timeout_s=2, offline_after_s=1.5))
        nobody = StreamReader("cam-none", StreamConfig(url=f"rtsp://127.0.0.1:{free_port()}/x", backoff_s=0.1, backoff_max_s=0.2, timeout_s=1, offline_after_s=1.5))
        sinks = [Recorder(), Recorder()]
        runs = [running(r, s) for r, s in zip((audio, nobody), sinks)]
        try:
            wait_for(lambda: audio.status.state == StreamState.OFFLINE and nobody.status.state == StreamState.OFFLINE, 10, f"{audio.status} {nobody.status}")
            time.sleep(0.6)  # more failed retries
        finally:
            for stop, thread in runs:
                stop.set()
                thread.join(10)
    assert "no video track" in audio.status.last_error and "audio" in audio.status.last_error
    assert nobody.status.last_error and nobody.status.samples == 0
    for reader, sink in zip((audio, nobody), sinks):
        assert reader.status.failures >= 3 and reader.status.connects >= 3
        assert sink.samples == []
        assert [c for c in sink.changes if c[1] == StreamState.OFFLINE] == [(StreamState.DOWN, StreamState.OFFLINE)]  # once
        assert reader.status.down_since is not None and (reader.status.since - reader.status.down_since).total_seconds() >= 1.5


def test_rtsp_credentials_from_the_environment_never_shown(clips, caplog, capfd):
    """The server asks for user:password. Right credentials from the environment: up. A wrong password: down,
    and neither password appears in the state, the logs or the URL shown. An unset variable says which."""
    caplog.set_level(logging.DEBUG)
    env = {"CAM_USER": "viewer", "CAM_PASS": PASSWORD}
    with RtspServer(free_port(), clips, auth=("viewer", PASSWORD)) as server:
        cfg = StreamConfig(url=server.url("/street"), every_s=1, username_env="CAM_USER", password_env="CAM_PASS", backoff_s=0.1, timeout_s=2, offline_after_s=1)
        good = StreamReader("cam-good", cfg, env=env)
        bad = StreamReader("cam-bad", cfg, env={**env, "CAM_PASS": "wrong-" + PASSWORD})
        unset = StreamReader("cam-unset", cfg, env={"CAM_USER": "viewer"})
        sinks = [Recorder(), Recorder(), Recorder()]
        runs = [running(r, s) for r, s in zip((good, bad, unset), sinks)]
        try:
            wait_for(lambda: good.status.samples >= 1 and bad.status.state == StreamState.OFFLINE and unset.status.state == StreamState.OFFLINE, 15, f"{good.status} {bad.status}")
        finally:
            for stop, thread in runs:
                stop.set()
                thread.join(10)
    assert "401" in bad.status.last_error or "nauthorized" in bad.status.last_error, bad.status.last_error
    assert unset.status.last_error == "stream credentials: environment variable(s) CAM_PASS not set"
    out, err = capfd.readouterr()  # ffmpeg's own messages too, had they been printed
    shown = caplog.text + repr([good.status, bad.status, unset.status]) + out + err
    assert PASSWORD not in shown and "viewer:" not in shown
    assert good.status.url == server.url("/street")


def test_http_snapshots(caplog):
    """A snapshot camera behind basic auth: one picture per every_s; a 503 takes it down, the next 200 up."""
    jpeg = STREET.read_bytes()
    env = {"SNAP_USER": "ops", "SNAP_PASS": PASSWORD}
    with SnapshotCamera(free_port(), jpeg, auth=("ops", PASSWORD)) as camera:
        reader = StreamReader("cam-http", StreamConfig(url=camera.url, every_s=0.3, username_env="SNAP_USER", password_env="SNAP_PASS", backoff_s=0.1, timeout_s=2), env=env)
        wrong = StreamReader("cam-http-bad", StreamConfig(url=camera.url, every_s=0.3, username_env="SNAP_USER", password_env="SNAP_PASS", backoff_s=0.1, timeout_s=2), env={**env, "SNAP_PASS": "x"})
        sinks = [Recorder(), Recorder()]
        runs = [running(r, s) for r, s in zip((reader, wrong), sinks)]
        try:
            wait_for(lambda: reader.status.samples >= 3, 10, f"{reader.status}")
            camera.failing = True
            wait_for(lambda: reader.status.state == StreamState.DOWN, 5, f"{reader.status}")
            assert reader.status.last_error == "snapshot URL answered HTTP 503"
            camera.failing = False
            n = reader.status.samples
            wait_for(lambda: reader.status.samples > n, 5, f"{reader.status}")
        finally:
            for stop, thread in runs:
                stop.set()
                thread.join(10)
    assert reader.status.state == StreamState.UP and reader.status.codec == "image"
    assert sinks[0].samples[0][1] == (640, 640, 3)
    gaps = [(b[0] - a[0]).total_seconds() for a, b in zip(sinks[0].samples, sinks[0].samples[1:3])]
    assert all(g >= 0.25 for g in gaps), gaps
    assert wrong.status.state != StreamState.UP and "HTTP 401" in wrong.status.last_error and "credentials" in wrong.status.last_error
    assert PASSWORD not in caplog.text


def _config(stream: str) -> str:
    return f"""
cameras:
  - id: cam-1
    location: {{district: d, point: p}}
    resolution: [640, 640]
    stream: {{{stream}}}
"""


def test_stream_config_refuses_credentials_in_the_url_without_echoing_them(tmp_path, monkeypatch, capsys):
    with pytest.raises(ConfigError) as e:
        parse_config(_config(f'url: "rtsp://admin:{PASSWORD}@10.1.2.3/live", every: 2'), "cams.yaml")
    assert "cams.yaml:6: cameras[0].stream.url:" in str(e.value) and "username_env/password_env" in str(e.value)
    assert PASSWORD not in str(e.value) and "admin" not in str(e.value)
    cfg = parse_config(_config("url: rtsp://10.1.2.3/live, every: 2, username_env: CAM_U, password_env: CAM_P, offline_after_s: 60"), "cams.yaml")
    stream = cfg.cameras[0].stream
    assert (stream.every_s, stream.kind, stream.offline_after_s, stream.decode) == (2.0, "rtsp", 60.0, "auto")
    assert stream.open_url({"CAM_U": "a b", "CAM_P": "p@ss/:"}) == "rtsp://a%20b:p%40ss%2F%3A@10.1.2.3/live"
    assert parse_config(_config("url: https://cam.example/snap.jpg"), "c").cameras[0].stream.kind == "http"
    for bad, why in [
        ("url: ftp://10.1.2.3/x", "must start with rtsp://"),
        ("url: rtsp:///live", "no host"),
        ("url: rtsp://h/x, every: 0", "greater than 0"),
        ("url: rtsp://h/x, password_env: CAM_P", "password_env needs username_env"),
        ("url: rtsp://h/x, username_env: 'not a name'", "username_env"),
        ("url: rtsp://h/x, backoff_s: 10, backoff_max_s: 5", "backoff_max_s"),
        ("url: rtsp://h/x, decode: some", "decode"),
    ]:
        with pytest.raises(ConfigError, match=why):
            parse_config(_config(bad), "cams.yaml")

    # `streetorder config check` names a stream whose credentials' variables are unset where it runs
    path = tmp_path / "cams.yaml"
    path.write_text(_config("url: rtsp://10.1.2.3/live, every: 2, username_env: SO_TEST_U, password_env: SO_TEST_P"))
    monkeypatch.delenv("SO_TEST_U", raising=False)
    monkeypatch.setenv("SO_TEST_P", PASSWORD)
    assert main(["config", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "stream rtsp every 2 s (warning: stream credentials: environment variable(s) SO_TEST_U not set here)" in out and PASSWORD not in out

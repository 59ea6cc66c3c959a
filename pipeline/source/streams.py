"""A camera's live stream as samples: one picture every `every_s` seconds, pulled from an RTSP stream (decoded with
PyAV) or an HTTP snapshot URL, reconnecting with exponential backoff when it drops, with a state anyone may read.

Why it is shaped so: a city camera gives 25 frames a second and we want one every 2 s. Decoding all 50 to keep
one is where the CPU goes (`docs/benchmarks.md`: a key frame alone costs a fraction of decoding its GOP), so when
the stream's key frames come at least every `every_s` (measured, `decode: auto`), only key frames are decoded and
every other packet is dropped unread. Otherwise every frame is decoded (a P-frame needs its references) and only
the due ones are converted to pictures.

A sample's time is the reader's clock (UTC) when the picture was decoded: RTSP cameras' own clocks reach us only
through RTCP, which ffmpeg does not expose per frame, and the engine needs each camera's times in order.

States: `connecting` (never had a picture yet), `up` (pictures arrive), `down` (the last attempt failed; retrying
with backoff), `offline` (down, or never up, for longer than `offline_after_s`: the service writes a
camera-offline event to the ledger). `offline` holds through further failed attempts, so it is announced once per
outage; the next picture makes it `up` again.

Who drives it: `StreamReader.run(sink, stop)` on a thread of the single-process service, or on a Ray camera actor;
`samples(stop)` is the same loop as a generator. Credentials come from the environment (`StreamConfig`), and every
error text is passed through `redact` before it is stored, logged or shown.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Protocol

import numpy as np

from ..config.streams import StreamConfig, StreamCredentialsError, redact
from .images import MAX_PIXELS, ImageError, decode_image

log = logging.getLogger(__name__)

SNAPSHOT_MAX_BYTES = 20 * 1024 * 1024
_GOP_TOLERANCE = 1.05  # a key-frame interval this close above every_s still counts as "key frames suffice"
_DUE_SLACK = 0.1  # a picture this share of every_s early is taken (key frames jitter around their interval)
_MAX_BAD_PACKETS = 50  # packets in a row that decode to nothing but errors: the stream is broken, reconnect


class StreamState(StrEnum):
    CONNECTING = "connecting"
    UP = "up"
    DOWN = "down"
    OFFLINE = "offline"


@dataclass(frozen=True)
class StreamStatus:
    """One stream as /ready and /metrics show it. `url` and `last_error` are redacted."""

    camera_id: str
    kind: str
    url: str
    state: StreamState
    since: datetime  # entered this state
    down_since: datetime | None  # the current outage began (the last picture, or the reader's start): None while up
    last_sample_at: datetime | None
    samples: int  # pictures handed on
    decoded: int  # frames decoded (more than samples when every frame must be decoded)
    connects: int  # attempts to open the stream
    reconnects: int  # attempts after the first
    failures: int  # attempts that failed and streams that dropped
    last_error: str | None
    decode_mode: str | None  # keyframes | all (RTSP, once known)
    codec: str | None
    keyframe_interval_s: float | None
    decode_seconds: float  # time spent decoding and converting, all frames


class StreamSink(Protocol):
    """Where a reader's output goes: the service's intake (threads) or a Ray camera actor."""

    def sample(self, camera_id: str, at: datetime, image: np.ndarray) -> None: ...

    def state_changed(self, status: StreamStatus, previous: StreamState) -> None: ...


class StreamError(Exception):
    """A stream that cannot be read now; the message is already redacted."""


class StreamReader:
    """Pulls one camera's stream. Not thread-safe to drive from two threads; `status` may be read from any."""

    def __init__(
        self, camera_id: str, config: StreamConfig, *, env: Mapping[str, str] | None = None, max_pixels: int = MAX_PIXELS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.camera_id = camera_id
        self.config = config
        self.env = env
        self.max_pixels = max_pixels
        self.clock = clock
        self.listeners: list[Callable[[StreamStatus, StreamState], None]] = []
        self._lock = threading.Lock()
        now = clock()
        self._status = StreamStatus(
            camera_id, config.kind, redact(config.url), StreamState.CONNECTING, now, now, None, 0, 0, 0, 0, 0, None, None, None, None, 0.0,
        )
        self._secrets: tuple[str, ...] = ()
        self._last_at: datetime | None = None
        self._next_due = 0.0  # monotonic time the next picture is due

    # ---- state ----------------------------------------------------------------------------------------

    @property
    def status(self) -> StreamStatus:
        with self._lock:
            return self._status

    def _update(self, **changes) -> None:
        with self._lock:
            self._status = replace(self._status, **changes)

    def _move(self, state: StreamState, **changes) -> None:
        with self._lock:
            previous = self._status.state
            self._status = replace(self._status, **changes, **({"state": state, "since": self.clock()} if state != previous else {}))
            status = self._status
        if state == previous:
            return
        message = "camera %s stream %s: %s -> %s%s"
        args = (self.camera_id, status.url, previous.value, state.value, f" ({status.last_error})" if status.last_error and state != StreamState.UP else "")
        (log.warning if state in (StreamState.DOWN, StreamState.OFFLINE) else log.info)(message, *args)
        for listener in self.listeners:
            try:
                listener(status, previous)
            except Exception:  # a listener's failure must not stop the stream
                log.exception("camera %s: stream state listener failed", self.camera_id)

    def _failed(self, error: BaseException | str) -> None:
        text = error if isinstance(error, str) else (str(error) if isinstance(error, (StreamError, StreamCredentialsError)) else f"{type(error).__name__}: {error}")
        text = redact(text, self._secrets)
        st = self.status
        state = StreamState.OFFLINE if st.state == StreamState.OFFLINE else StreamState.DOWN
        self._move(state, failures=st.failures + 1, last_error=text, down_since=st.down_since or st.last_sample_at or self.clock())
        self._check_offline()

    def _check_offline(self) -> None:
        st = self.status
        if st.state in (StreamState.DOWN, StreamState.CONNECTING) and st.down_since is not None:
            if self.clock() - st.down_since >= timedelta(seconds=self.config.offline_after_s):
                self._move(StreamState.OFFLINE)

    def _wait(self, stop: threading.Event, seconds: float) -> None:
        """Sleep `seconds` (or until stopped), waking when the stream turns offline to announce it on time."""
        end = time.monotonic() + seconds
        while not stop.is_set():
            st = self.status
            left = end - time.monotonic()
            if st.down_since is not None and st.state != StreamState.OFFLINE:
                to_offline = (st.down_since + timedelta(seconds=self.config.offline_after_s) - self.clock()).total_seconds()
                left = min(left, max(to_offline, 0.0) + 0.01)
            if left <= 0 or stop.wait(left):
                self._check_offline()
                if time.monotonic() >= end:
                    return
                continue
            self._check_offline()

    # ---- the loop ---------------------------------------------------------------------------------------

    def run(self, sink: StreamSink, stop: threading.Event) -> None:
        """Hand every sample to `sink` and every state change to `sink.state_changed` until `stop` is set. The
        sink's own errors are logged and the stream goes on (a refused sample is that sample lost, no more)."""
        self.listeners.append(sink.state_changed)
        try:
            for at, image in self.samples(stop):
                try:
                    sink.sample(self.camera_id, at, image)
                except Exception as e:
                    log.warning("camera %s: sample at %s not taken: %s", self.camera_id, at.isoformat(), redact(str(e), self._secrets))
        finally:
            self.listeners.remove(sink.state_changed)

    def samples(self, stop: threading.Event) -> Iterator[tuple[datetime, np.ndarray]]:
        """(time, BGR picture) every `every_s` while the stream is up; reconnects with backoff until `stop`."""
        delay = self.config.backoff_s
        while not stop.is_set():
            st = self.status
            self._update(connects=st.connects + 1, reconnects=st.reconnects + (1 if st.connects else 0))
            got = 0
            try:
                creds = self.config.credentials(self.env)
                self._secrets = (creds[1],) if creds and creds[1] else ()
                session = self._rtsp(stop) if self.config.kind == "rtsp" else self._http(stop, creds)
                for sample in session:
                    got += 1
                    yield sample
                if stop.is_set():
                    return
                raise StreamError("the stream ended")
            except GeneratorExit:
                raise
            except Exception as e:  # any failure of the source: log it, back off, reconnect
                self._failed(e)
            if got:
                delay = self.config.backoff_s  # it was up: start the doubling afresh
            self._wait(stop, delay)
            delay = min(delay * 2, self.config.backoff_max_s)

    def _deliver(self, image: np.ndarray, spent: float) -> tuple[datetime, np.ndarray]:
        """Book a picture as a sample: its time (strictly after the last one), the state, the counters."""
        at = self.clock()
        if self._last_at is not None and at <= self._last_at:
            at = self._last_at + timedelta(microseconds=1)  # a clock step back must not break the camera's frame order
        self._last_at = at
        st = self.status
        now = time.monotonic()
        self._next_due = max(self._next_due + self.config.every_s, now + self.config.every_s * (1 - _DUE_SLACK))
        self._update(samples=st.samples + 1, last_sample_at=at, down_since=None, decode_seconds=st.decode_seconds + spent)
        self._move(StreamState.UP)
        return at, image

    def _due(self) -> bool:
        return time.monotonic() >= self._next_due - self.config.every_s * _DUE_SLACK

    # ---- RTSP ---------------------------------------------------------------------------------------------

    def _rtsp(self, stop: threading.Event) -> Iterator[tuple[datetime, np.ndarray]]:
        import av  # PyAV: a dependency of the pipeline, imported where it is used

        t = self.config.timeout_s
        # a short probe: the stream's parameters come with its SDP and first key frame, and every reconnect pays it
        options = {"rtsp_transport": self.config.transport, "timeout": str(int(t * 1_000_000)), "analyzeduration": "500000"}
        try:
            container = av.open(self.config.open_url(self.env), options=options, timeout=(t, t))
        except av.FFmpegError as e:
            raise StreamError(f"cannot open the stream: {_av_message(e)}") from None
        try:
            if not container.streams.video:
                found = ", ".join(f"{s.type} {s.codec_context.name if s.codec_context else '?'}" for s in container.streams) or "nothing"
                raise StreamError(f"the stream has no video track (it carries: {found})")
            video = container.streams.video[0]
            ctx = video.codec_context
            if ctx is None:
                raise StreamError(f"no decoder for the stream's video codec ({video.codec_tag or 'unknown'}): use H.264, H.265, MJPEG or MPEG-4")
            self._update(codec=ctx.name)
            tb = float(video.time_base or 0) or None
            last_key: float | None = None
            last_pts: int | None = None
            step = 0  # pts between consecutive packets: RTP leaves some packets without a pts, we infer it
            gops: list[float] = []
            started = False
            bad = 0
            mode = None if self.config.decode == "auto" else self.config.decode
            for packet in container.demux(video):
                if stop.is_set():
                    return
                if packet.size == 0:
                    continue
                key = packet.is_keyframe
                pts = packet.pts if packet.pts is not None else packet.dts
                if pts is None and last_pts is not None and step:
                    pts = last_pts + step
                if pts is not None:
                    if last_pts is not None and pts > last_pts:
                        step = pts - last_pts
                    last_pts = pts
                if key:
                    if pts is not None and tb:
                        s = pts * tb
                        if last_key is not None and s > last_key:
                            gops = [*gops[-2:], s - last_key]
                            gop = min(gops)  # a key frame whose flag or time got lost looks like a long GOP once
                            self._update(keyframe_interval_s=round(gop, 3))
                            if self.config.decode == "auto":
                                mode = "keyframes" if gop <= self.config.every_s * _GOP_TOLERANCE else "all"
                        last_key = s
                    started = True
                if not started:
                    continue  # nothing decodes before the first key frame
                keyframes = (mode or "all") == "keyframes"
                if mode is not None and self.status.decode_mode != mode:
                    self._update(decode_mode=mode)
                if keyframes and not (key and self._due()):
                    continue  # dropped unread: the cheap path
                t0 = time.perf_counter()
                try:
                    frames = ctx.decode(packet)
                except av.FFmpegError as e:
                    bad += 1
                    if bad >= _MAX_BAD_PACKETS:
                        raise StreamError(f"the video does not decode ({ctx.name}): {_av_message(e)}") from None
                    continue
                bad = 0
                st = self.status
                self._update(decoded=st.decoded + len(frames))
                for frame in frames:
                    if not self._due():
                        continue
                    image = frame.to_ndarray(format="bgr24")
                    if image.shape[0] * image.shape[1] > self.max_pixels:
                        raise StreamError(f"frames of {image.shape[1]}x{image.shape[0]} are larger than the {self.max_pixels:,} pixels allowed")
                    yield self._deliver(image, time.perf_counter() - t0)
                    t0 = time.perf_counter()
                if not frames:
                    self._update(decode_seconds=self.status.decode_seconds + time.perf_counter() - t0)
        finally:
            container.close()

    # ---- HTTP snapshots -----------------------------------------------------------------------------------

    def _http(self, stop: threading.Event, creds: tuple[str, str] | None) -> Iterator[tuple[datetime, np.ndarray]]:
        import httpx

        auth = None
        if creds is not None:
            auth = httpx.DigestAuth(*creds) if self.config.http_auth == "digest" else httpx.BasicAuth(*creds)
        with httpx.Client(timeout=self.config.timeout_s, auth=auth, follow_redirects=True, headers={"Accept": "image/jpeg, image/png, image/*"}) as client:
            while not stop.is_set():
                wait = self._next_due - time.monotonic()
                if wait > 0 and stop.wait(wait):
                    return
                t0 = time.perf_counter()
                try:
                    data = self._get(client)
                except httpx.HTTPError as e:
                    raise StreamError(f"snapshot request failed: {type(e).__name__}: {e}") from None
                try:
                    image = decode_image(data, "snapshot", self.max_pixels)
                except ImageError as e:
                    raise StreamError(f"the snapshot is not a picture: {e}") from None
                st = self.status
                self._update(decoded=st.decoded + 1, codec="image")
                yield self._deliver(image, time.perf_counter() - t0)

    def _get(self, client) -> bytes:
        with client.stream("GET", self.config.url) as r:
            if r.status_code != 200:
                hint = " (check the credentials' environment variables)" if r.status_code in (401, 403) else ""
                raise StreamError(f"snapshot URL answered HTTP {r.status_code}{hint}")
            body = bytearray()
            for chunk in r.iter_bytes():
                body += chunk
                if len(body) > SNAPSHOT_MAX_BYTES:
                    raise StreamError(f"the snapshot is larger than {SNAPSHOT_MAX_BYTES // (1024 * 1024)} MiB")
            return bytes(body)


def _av_message(e: Exception) -> str:
    """PyAV's error without the file name it appends (the URL, with its credentials): the reason alone."""
    strerror = getattr(e, "strerror", None)
    return strerror or str(e)

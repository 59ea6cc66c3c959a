"""A local RTSP server for the stream tests and `streetorder bench streams`: GStreamer's gst-rtsp-server
(Debian: python3-gi, gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-base, gstreamer1.0-plugins-good), run by
the system interpreter /usr/bin/python3, so the venv needs no GObject bindings. `RtspServer` starts it as a
child process; it plays files as they are (no transcoding), so it costs little beside the readers.

As a script: rtsp_server.py PORT [--auth USER:PASSWORD] MOUNT=LAUNCH ...; prints "ready" once it listens.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SYSTEM_PYTHON = "/usr/bin/python3"


def h264_file(path: Path) -> str:
    """A launch line that plays an H.264 MP4 file at its own pace (qtdemux gives AVC that rtph264pay takes)."""
    return f"( filesrc location={path} ! qtdemux ! rtph264pay name=pay0 pt=96 config-interval=1 )"


def encode_video(frames, out: Path, *, fps: int, gop: int, size: tuple[int, int], preset: str = "ultrafast", crf: int = 30) -> Path:
    """BGR frames as an H.264 MP4 with a key frame every `gop` frames (PyAV's libx264)."""
    import av

    with av.open(str(out), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = size[0], size[1], "yuv420p"
        s.codec_context.gop_size = gop
        s.options = {"preset": preset, "keyint_min": str(gop), "sc_threshold": "0", "bf": "0", "crf": str(crf)}
        for img in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return out


def encode_clip(image: Path, out: Path, *, fps: int, gop: int, seconds: float) -> Path:
    """A still picture as an H.264 MP4 with a key frame every `gop` frames (the tests' streams)."""
    import cv2

    img = cv2.imread(str(image))
    return encode_video((img for _ in range(int(fps * seconds))), out, fps=fps, gop=gop, size=(img.shape[1], img.shape[0]))


AUDIO_ONLY = "( audiotestsrc is-live=true ! audioconvert ! audio/x-raw,rate=8000,channels=1 ! rtpL16pay name=pay0 pt=97 )"


class RtspServer:
    """The server as a child process; `url(mount)` is where a mount plays. `stop()` drops every client (a stream
    that goes away), `start()` on the same port brings it back."""

    def __init__(self, port: int, mounts: dict[str, str], auth: tuple[str, str] | None = None) -> None:
        self.port, self.mounts, self.auth = port, mounts, auth
        self.proc: subprocess.Popen | None = None

    def url(self, mount: str) -> str:
        return f"rtsp://127.0.0.1:{self.port}{mount}"

    def start(self) -> RtspServer:
        args = [SYSTEM_PYTHON, __file__, str(self.port)]
        if self.auth:
            args += ["--auth", ":".join(self.auth)]
        args += [f"{m}={launch}" for m, launch in self.mounts.items()]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            rest = self.proc.stdout.read() if self.proc.poll() is not None else ""
            self.stop()
            raise RuntimeError(
                f"the RTSP server did not start: {line}{rest}\n(it needs the Debian packages of the README's test command: "
                "python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good)"
            )
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> RtspServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _serve(argv: list[str]) -> None:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)
    port, rest = argv[0], argv[1:]
    auth = None
    if rest and rest[0] == "--auth":
        auth, rest = rest[1], rest[2:]
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    permissions = None
    if auth:
        user, password = auth.split(":", 1)
        rtsp_auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "viewer")
        rtsp_auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
        server.set_auth(rtsp_auth)
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_permission_for_role("viewer", "media.factory.access", True)
        permissions.add_permission_for_role("viewer", "media.factory.construct", True)
    for spec in rest:
        mount, launch = spec.split("=", 1)
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(launch)
        factory.set_shared(False)  # each client from the start of the file
        if permissions is not None:
            factory.set_permissions(permissions)
        server.get_mount_points().add_factory(mount, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on port {port}", flush=True)
        sys.exit(1)
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    _serve(sys.argv[1:])

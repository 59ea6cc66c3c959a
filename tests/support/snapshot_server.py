"""A tiny HTTP snapshot camera for the stream tests: GET /snapshot.jpg answers a JPEG (behind basic auth when
given credentials); `failing` makes it answer 503, `stop()` closes the port, `start()` opens it again."""

from __future__ import annotations

import base64
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class SnapshotCamera:
    def __init__(self, port: int, jpeg: bytes, auth: tuple[str, str] | None = None) -> None:
        self.port, self.jpeg, self.auth = port, jpeg, auth
        self.failing = False
        self.requests = 0
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/snapshot.jpg"

    def start(self) -> SnapshotCamera:
        camera = self
        expected = "Basic " + base64.b64encode(":".join(self.auth).encode()).decode() if self.auth else None

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                camera.requests += 1
                if expected and self.headers.get("Authorization") != expected:
                    self._answer(401, b"unauthorized", "text/plain", {"WWW-Authenticate": 'Basic realm="camera"'})
                elif camera.failing:
                    self._answer(503, b"busy", "text/plain")
                else:
                    self._answer(200, camera.jpeg, "image/jpeg")

            def _answer(self, status: int, body: bytes, ctype: str, headers: dict | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> SnapshotCamera:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

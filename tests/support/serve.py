"""A real service for the tests that need one: `streetorder serve` as a child process (`ServeProcess`), or an
app on uvicorn in a thread (`serve_app`, when the test also reaches into the app). Both wait the same way, by
polling a probe until it answers 200, so a slow start is waited for and a crashed start fails at once with the
service's own output."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.conftest import REPO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(base: str, died: Callable[[], str | None], *, probe: str = "/health", timeout: float = 90.0) -> None:
    """Poll `base + probe` until it answers 200. `died` returns why the service is gone (its output), or None
    while it runs: a service that exits is reported at once instead of after the whole timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{base}{probe}", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        gone = died()
        assert gone is None, f"the service exited before it answered {probe}:\n{gone}"
        assert time.monotonic() < deadline, f"the service did not answer {probe} within {timeout:.0f} s"
        time.sleep(0.1)


class ServeProcess:
    """`streetorder serve --port <free port> ARGS` as a child process, started and stopped the way an operator
    would, its output in `cwd/serve-<port>.log`. STREETORDER_API_KEY is removed from its environment (the
    tests give keys through the ledger), `env` adds to it. Returns once `probe` answers 200."""

    def __init__(self, args: list[str], cwd: Path, *, env: dict[str, str] | None = None, probe: str = "/health", timeout: float = 90.0) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        full_env = {**os.environ, "PYTHONPATH": str(REPO), "YOLO_OFFLINE": "1", **(env or {})}
        full_env.pop("STREETORDER_API_KEY", None)
        self.log_path = Path(cwd) / f"serve-{self.port}.log"
        self.log = self.log_path.open("w")
        cmd = [sys.executable, "-m", "pipeline.cli", "serve", "--port", str(self.port), *args]
        self.proc = subprocess.Popen(cmd, env=full_env, cwd=cwd, stdout=self.log, stderr=subprocess.STDOUT)
        try:
            wait_until_up(self.base, lambda: None if self.proc.poll() is None else self.output(), probe=probe, timeout=timeout)
        except BaseException:
            self.stop(signal.SIGKILL)
            raise

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        """Send `sig` and wait for the exit; returns the exit status (negative: the signal that ended it)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=timeout)
        self.log.close()
        return rc

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


@contextmanager
def serve_app(app, *, probe: str = "/health", timeout: float = 30.0) -> Iterator[str]:
    """Run `app` on uvicorn (lifespan on) in a daemon thread on a free port; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, lambda: None if thread.is_alive() else "(the uvicorn thread ended; see the log above)", probe=probe, timeout=timeout)
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=30)

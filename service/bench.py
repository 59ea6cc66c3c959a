"""`streetorder bench serve`: the live endpoint under concurrent load, against the detector alone.

A real `streetorder serve` (uvicorn, HTTP on 127.0.0.1) is started as a subprocess, and `POST /detect` is
driven with real images at concurrency 1, 4 and 16 (asyncio, one kept-alive connection per client, each
request encoded once and replayed). In the same
run, round by round in turn with the load phases, the bench process times the service's own detector (same
model, same runtime: read from the service's `streetorder_model_info`) on the same decoded images: one image
per call, and batches of 2-16. Two ratios say what the service makes of the detector:

- `c16_vs_best_batched`: images/s served at concurrency 16 / the detector's best batched images/s, the median
  of `PAIRS` stretches timed back to back once the best batch size is known (`_paired`; the ratio of the
  rounds' own figures is `c16_vs_best_batched_unpaired`);
- `c1_p99_vs_single`: p99 latency of one client at a time / the detector's median single-image time, from
  `INTERLEAVED` requests taken in turn with single-image detector calls (`_interleaved`; the ratio of the
  rounds' own figures is `c1_p99_vs_single_unpaired`; `c1_p99_vs_single_p99` puts the tail against the
  detector's own p99, to show how much of it is the machine's noise).

Beside them, `c1_mean_ms` breaks the interleaved requests' time down by the service's own metrics (`_breakdown`).

The clients, the service and the bench's own detector share the machine's cores, as a live service shares
them with its neighbours: read the figures as ratios measured side by side, not as absolute capacity.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from pipeline.detect import DetectorSettings
from pipeline.paths import REPO, SAMPLE_CONFIG, SHARED_DATA
from pipeline.source.images import decode_image

from .runtime.metrics import STAGES

CONCURRENCY = (1, 4, 16)
# Requests a load phase sends, per round: enough at c=1 that its p99 is not just the slowest of a few dozen,
# and at c=16 that the ramp-up and the last partial batches are a small part of the wall time.
REQUESTS = {1: 100, 4: 64, 16: 128}
# Requests at c=1 taken in turn with the detector alone, behind `c1_p99_vs_single`. Its p99 is the fifth
# slowest of 500: of 200 it was the second slowest, and five stretches of 200 in one run of 1000 gave 1.25-1.34
# against 1.30 for the whole.
INTERLEAVED = 500
PAIRS = 3  # back-to-back (detector at its best batch, c=16) stretches behind `c16_vs_best_batched`
BATCHES = (1, 2, 4, 8, 16)
DEFAULT_DATA = SHARED_DATA / "garbage-cn" / "val" / "images"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """`streetorder serve` in a subprocess on a free port; `env` adds STREETORDER_* settings."""

    def __init__(self, model: str | None, env: dict[str, str], workdir: Path, config: Path = SAMPLE_CONFIG) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [
            sys.executable, "-m", "pipeline.cli", "serve", "--port", str(self.port), "--config", str(config),
            "--db", f"sqlite:///{workdir}/ledger.db", "--evidence-dir", str(workdir / "engine"), "--log-level", "warning",
        ]
        if model:
            cmd += ["--model", model]
        full_env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), "YOLO_OFFLINE": "1", **env}
        full_env.pop("STREETORDER_API_KEY", None)
        self.keys = _keys(f"sqlite:///{workdir}/ledger.db")  # a camera's key for /detect, an admin's for /metrics
        self.log = open(workdir / "serve.log", "w+")
        self.proc = subprocess.Popen(cmd, env=full_env, cwd=workdir, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"streetorder serve exited with {self.proc.returncode}: {self._log_tail()}")
            try:
                if httpx.get(f"{self.url}/ready", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"streetorder serve not ready after {timeout_s:.0f} s: {self._log_tail()}")

    def _log_tail(self) -> str:
        self.log.seek(0)
        return self.log.read()[-2000:]

    def metrics(self) -> str:
        return httpx.get(f"{self.url}/metrics", timeout=10, headers={"X-API-Key": self.keys["admin"]}).text

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def _metric(text: str, name: str, labels: str = "") -> list[tuple[str, float]]:
    out = []
    for line in text.splitlines():
        m = re.match(rf"^{re.escape(name)}(\{{.*\}})?\s+(\S+)$", line)
        if m and labels in (m.group(1) or ""):
            out.append((m.group(1) or "", float(m.group(2))))
    return out


def _batches(text: str) -> tuple[float, float]:
    """(images, detector calls) so far, from the batch size histogram."""
    return sum(v for _, v in _metric(text, "streetorder_batch_size_sum")), sum(v for _, v in _metric(text, "streetorder_batch_size_count"))


def _stage_totals(text: str) -> dict[str, tuple[float, float]]:
    """(seconds, count) so far of each step a /detect request's time is spent in, from the service's metrics."""
    def total(name: str, labels: str = "") -> tuple[float, float]:
        return sum(v for _, v in _metric(text, f"{name}_sum", labels)), sum(v for _, v in _metric(text, f"{name}_count", labels))

    out = {"request": total("streetorder_request_seconds", 'route="/detect",status="200"')}
    out |= {stage: total("streetorder_image_stage_seconds", f'stage="{stage}"') for stage in STAGES}
    out["queue"] = total("streetorder_queue_wait_seconds")
    out["model"] = total("streetorder_inference_seconds")
    return out


def _breakdown(before: str, after: str, served: list[float], alone: list[float]) -> dict[str, float]:
    """Where one request's milliseconds go at c=1, as means over the requests between two scrapes of /metrics:
    the steps the service times (decode, prepare, queue, model, boxes), the rest of its own time (HTTP framework,
    thread hops, JSON), and what happens outside it (the client, the connection, uvicorn's parsing). Means, not
    medians: a histogram keeps sums. `model` is the runtime alone; the detector's own time (`alone`) is prepare +
    model + boxes without the service. The service's time runs until its app returns, a little after the answer
    was sent (the request's teardown), so it is slightly over and the time outside it slightly under."""
    a, b = _stage_totals(before), _stage_totals(after)
    ms = {k: 1000 * (b[k][0] - a[k][0]) / (b[k][1] - a[k][1]) if b[k][1] > a[k][1] else float("nan") for k in b}
    steps = ("decode", "prepare", "queue", "model", "boxes")
    out = {"client": 1000 * statistics.fmean(served), "outside the service": 1000 * statistics.fmean(served) - ms["request"], "in the service": ms["request"]}
    out |= {k: ms[k] for k in steps}
    out["rest of the service (framework, hops, JSON)"] = ms["request"] - sum(ms[k] for k in steps)
    out["detector alone"] = 1000 * statistics.fmean(alone)
    return {k: round(v, 2) for k, v in out.items()}


def _backend(text: str) -> tuple[str, str]:
    """(model, backend) from streetorder_model_info."""
    for labels, _ in _metric(text, "streetorder_model_info"):
        got = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        return got["model"], got["backend"]
    raise RuntimeError("the service reports no model (streetorder_model_info)")


def _same_detector(model: str, backend: str, threads: int | None = None):
    """The service's detector in this process: same model files, same runtimes as its `backend` label says
    ('openvino+cue:onnx': the street model on OpenVINO, its cue model on onnxruntime; auto's probe may pick
    either per model, so it is not re-run here), and the threads each of its streams has."""
    from pipeline.detect.cascade import CueCascade, load_cue_cascade
    from pipeline.detect.registry import load_detector

    primary, _, cue = backend.partition("+cue:")
    detector = load_cue_cascade(model, backend=primary, settings=DetectorSettings(conf=0.25), threads=threads)
    if isinstance(detector, CueCascade) and cue and cue != primary:
        # by its folder: the file a variant serves may be the INT8 IR, which names no model
        detector.cue = load_detector(detector.cue.path.parent, backend=cue, settings=detector.cue.settings, threads=threads)
    return detector


def _service_parallelism(env: dict[str, str]):
    """The streams and threads the service started with `env` (over this environment) chooses (`runtime.detector`)."""
    from service.runtime.detector import detector_threads, service_parallelism
    from service.settings import ServiceSettings

    settings = ServiceSettings.load(inference_streams=env.get("STREETORDER_INFERENCE_STREAMS"), threads=env.get("STREETORDER_THREADS"))
    par = service_parallelism(settings)
    return par, detector_threads(settings, par)


def _keys(db_url: str) -> dict[str, str]:
    """Role keys in the bench's own ledger, as an operator would create them (`streetorder keys create`)."""
    from pipeline.db.engine import Database

    from .http.keys import KeyStore, Role

    store = KeyStore(Database(db_url))
    try:
        return {role.value: store.create(f"bench-{role.value}", role).key for role in (Role.CAMERA, Role.ADMIN)}
    finally:
        store.db.dispose()


def _requests(images: list[bytes], key: str, port: int) -> list[bytes]:
    """Each image as one complete `POST /detect` request (headers and multipart body), encoded once: the load
    generator shares the service's cores, so it replays ready bytes instead of building every request again
    (httpx spent 3-10 ms of CPU an image doing that, as much as the service's own HTTP work)."""
    out = []
    for i, image in enumerate(images):
        request = httpx.Request("POST", f"http://127.0.0.1:{port}/detect", headers={"X-API-Key": key}, files={"image": (f"{i}.jpg", image, "image/jpeg")})
        body = request.read()
        head = ["POST /detect HTTP/1.1", f"Host: 127.0.0.1:{port}", f"X-API-Key: {key}", f"Content-Type: {request.headers['content-type']}", f"Content-Length: {len(body)}"]
        out.append(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    return out


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    """One request on a kept-alive connection; the response's status (its body is read and dropped)."""
    writer.write(request)
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("the service closed the connection")
    length, close = 0, False
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value.strip().lower() == b"close":
            close = True
    await reader.readexactly(length)
    if close:
        raise ConnectionResetError("the service asked to close the connection")
    return int(status_line.split()[1])


async def _load(url: str, images: list[bytes], concurrency: int, requests: int, key: str) -> tuple[list[float], float, int]:
    """`requests` POST /detect by `concurrency` clients, one kept-alive connection each; (latencies s, wall s,
    errors). A latency runs from writing the request to the last byte of the response."""
    port = int(url.rsplit(":", 1)[1])
    ready = _requests(images, key, port)
    latencies: list[float] = []
    errors = 0
    next_i = 0

    async def client() -> None:
        nonlocal next_i, errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while next_i < requests:
                i = next_i
                next_i += 1
                t = time.perf_counter()
                try:
                    status = await _exchange(reader, writer, ready[i % len(ready)])
                except (ConnectionError, asyncio.IncompleteReadError):
                    errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    continue
                dt = time.perf_counter() - t
                if status == 200:
                    latencies.append(dt)
                else:
                    errors += 1
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return latencies, time.perf_counter() - start, errors


@contextlib.contextmanager
def _collector_paused():
    """No garbage collection in the load generator while it times requests: this process also holds the
    bench's own detector and images, and one full collection here (about 70 ms) landed in a request's latency
    as if the service had been slow."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _detector_round(detector, decoded: list[np.ndarray]) -> tuple[list[float], dict[int, float]]:
    """Single-image seconds per image, and images/s per batch size, over `decoded`."""
    single = []
    for im in decoded:
        t = time.perf_counter()
        detector.detect([im])
        single.append(time.perf_counter() - t)
    rates = {}
    for bs in BATCHES:
        n = len(decoded) - len(decoded) % bs
        t = time.perf_counter()
        for i in range(0, n, bs):
            detector.detect(decoded[i : i + bs])
        rates[bs] = n / (time.perf_counter() - t)
    return single, rates


def _paired(service: Service, detector, decoded: list[np.ndarray], blobs: list[bytes], batch: int, pairs: int) -> list[float]:
    """c=16 throughput over the detector's at its best batch size, measured back to back `pairs` times.

    The best batch size is chosen from the rounds, but its rate there is the highest of five noisy figures
    (OpenVINO runs a batch image by image, so they differ mostly by the machine's noise): that maximum
    overstates the detector by about as much as the noise. So, once chosen, the batch size is timed again, each
    time right beside an equal stretch of c=16 load, and each pair gives one ratio."""
    out = []
    n = REQUESTS[16]
    images = (decoded * (n // len(decoded) + 1))[: n - n % batch]

    def detector_rate() -> float:
        t = time.perf_counter()
        for i in range(0, len(images), batch):
            detector.detect(images[i : i + batch])
        return len(images) / (time.perf_counter() - t)

    def served_rate() -> float:
        lat, wall, _ = asyncio.run(_load(service.url, blobs, 16, n, service.keys["camera"]))
        return len(lat) / wall

    for k in range(pairs):
        with _collector_paused():
            if k % 2:  # every other pair the other way round, so a drift in the machine's load cancels out
                served, alone = served_rate(), detector_rate()
            else:
                alone, served = detector_rate(), served_rate()
        out.append(served / alone)
    return out


async def _interleaved(service: Service, detector, decoded: list[np.ndarray], blobs: list[bytes], n: int) -> tuple[list[float], list[float]]:
    """(detector seconds, request seconds): `n` times one `POST /detect` on a kept-alive connection, then the
    detector alone on one image. The rounds time the detector and the c=1 load minutes apart, and on this
    shared machine the detector's median moved by a quarter between them; taken in turn, both see the same
    machine."""
    ready = _requests(blobs, service.keys["camera"], service.port)
    reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
    alone, served = [], []
    try:
        for i in range(n):
            t = time.perf_counter()
            status = await _exchange(reader, writer, ready[i % len(ready)])
            if status == 200:
                served.append(time.perf_counter() - t)
            t = time.perf_counter()
            detector.detect([decoded[i % len(decoded)]])
            alone.append(time.perf_counter() - t)
    finally:
        writer.close()
    return alone, served


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def run_serve_bench(model: str | None = None, data: Path = DEFAULT_DATA, images: int = 32, rounds: int = 2, batching: bool = True, env: dict[str, str] | None = None) -> dict:
    paths = sorted(p for p in Path(data).glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:images]
    if len(paths) < 16:
        raise FileNotFoundError(f"bench serve needs at least 16 images in {data}, found {len(paths)}")
    blobs = [p.read_bytes() for p in paths]
    decoded = [decode_image(b, p.name) for b, p in zip(blobs, paths)]
    # throughput at a fixed concurrency: every request is served (on a busy machine c=16 passes the default 2 s
    # latency budget and would be shed); shedding is `--burst`'s to measure
    settings_env = {"STREETORDER_BATCHING": "1" if batching else "0", "STREETORDER_LATENCY_BUDGET_S": "60", **(env or {})}
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        service = Service(model, settings_env, Path(tmp))
        try:
            service.wait_ready()
            model_name, backend = _backend(service.metrics())
            par, threads = _service_parallelism(settings_env)
            detector = _same_detector(model_name if model is None else model, backend, threads)
            asyncio.run(_load(service.url, blobs, 4, 16, service.keys["camera"]))  # warm-up: sessions, threads, connection pools
            _detector_round(detector, decoded[:8])
            single: list[float] = []
            rates: dict[int, list[float]] = {bs: [] for bs in BATCHES}
            served = {c: {"latencies": [], "wall": 0.0, "errors": 0, "requests": 0, "images": 0.0, "calls": 0.0} for c in CONCURRENCY}
            for _ in range(rounds):  # detector and service phases in turn, so the neighbours' load hits both
                with _collector_paused():  # the detector alone, timed as the requests are
                    s, r = _detector_round(detector, decoded)
                single += s
                for bs, v in r.items():
                    rates[bs].append(v)
                for c in CONCURRENCY:
                    n = REQUESTS[c]
                    before = _batches(service.metrics())
                    with _collector_paused():
                        lat, wall, err = asyncio.run(_load(service.url, blobs, c, n, service.keys["camera"]))
                    after = _batches(service.metrics())
                    served[c]["images"] += after[0] - before[0]
                    served[c]["calls"] += after[1] - before[1]
                    served[c]["latencies"] += lat
                    served[c]["wall"] += wall
                    served[c]["errors"] += err
                    served[c]["requests"] += n
            batched = {bs: statistics.median(v) for bs, v in rates.items()}
            best_bs = max(batched, key=batched.get)
            pairs = _paired(service, detector, decoded, blobs, best_bs, PAIRS)
            before = service.metrics()
            with _collector_paused():
                alone, one_client = asyncio.run(_interleaved(service, detector, decoded, blobs, INTERLEAVED))
            breakdown = _breakdown(before, service.metrics(), one_client, alone)
        finally:
            service.stop()
    single_ms = statistics.median(single) * 1000
    out_serve = {}
    for c, s in served.items():
        lat = s["latencies"]
        out_serve[f"c{c}"] = {
            "requests": s["requests"],
            "errors": s["errors"],
            "images_per_s": round(len(lat) / s["wall"], 1),
            "p50_ms": round(_pct(lat, 50) * 1000, 1),
            "p95_ms": round(_pct(lat, 95) * 1000, 1),
            "p99_ms": round(_pct(lat, 99) * 1000, 1),
            "mean_batch_size": round(s["images"] / s["calls"], 2) if s["calls"] else None,
        }
    return {
        "model": model_name,
        "backend": backend,
        "batching": batching,
        "images": len(decoded),
        "image_size": f"{decoded[0].shape[1]}x{decoded[0].shape[0]}",
        "rounds": rounds,
        "cpu": f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at the end",
        "parallelism": {"streams": par.streams, "threads": par.threads, "why": par.why},
        "detector": {
            "single_ms": round(single_ms, 1),
            "single_p99_ms": round(_pct(single, 99) * 1000, 1),
            "batched_images_per_s": {str(bs): round(v, 1) for bs, v in batched.items()},
            "best_batch": best_bs,
            "best_batched_images_per_s": round(batched[best_bs], 1),
        },
        "serve": out_serve,
        # the headline: median of the paired rounds (see `_paired`); the unpaired ratio beside it
        "c16_vs_best_batched": round(statistics.median(pairs), 3),
        "c16_vs_best_batched_pairs": [round(r, 3) for r in pairs],
        "c16_vs_best_batched_unpaired": round(out_serve["c16"]["images_per_s"] / batched[best_bs], 3),
        # the headline: one request, then the detector on one image, in turn (see `_interleaved`)
        "c1_p99_vs_single": round(_pct(one_client, 99) / statistics.median(alone), 3),
        "c1_p50_vs_single": round(_pct(one_client, 50) / statistics.median(alone), 3),
        "c1_p99_vs_single_p99": round(_pct(one_client, 99) / _pct(alone, 99), 3),  # tail against tail: how much is the machine's noise
        "c1_interleaved": {"requests": len(one_client), "p50_ms": round(_pct(one_client, 50) * 1000, 1), "p99_ms": round(_pct(one_client, 99) * 1000, 1),
                           "single_ms": round(statistics.median(alone) * 1000, 1), "single_p99_ms": round(_pct(alone, 99) * 1000, 1)},
        "c1_p99_vs_single_unpaired": round(out_serve["c1"]["p99_ms"] / single_ms, 3),
        "c1_mean_ms": breakdown,  # where a request's time goes at c=1 (see `_breakdown`)
    }


def cmd_bench_serve(args: argparse.Namespace) -> int:
    """`streetorder bench serve`: run the bench and print its figures (one JSON object with --json)."""
    env = {"STREETORDER_INFERENCE_STREAMS": str(args.streams)} if getattr(args, "streams", None) else None
    out = run_serve_bench(args.model, data=Path(args.data), images=args.images, rounds=args.rounds, batching=not args.no_batching, env=env)
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    d = out["detector"]
    print(f"model {out['model']} ({out['backend']}), {out['images']} images {out['image_size']}, {out['rounds']} rounds, {out['cpu']}, micro-batching {'on' if out['batching'] else 'off'}")
    print(f"detector streams: {out['parallelism']['why']}")
    print(f"detector alone: {d['single_ms']} ms single image; batched images/s {d['batched_images_per_s']} (best: batch {d['best_batch']}, {d['best_batched_images_per_s']}/s)")
    for c, s in out["serve"].items():
        print(f"POST /detect {c:>4}: {s['images_per_s']:6.1f} images/s  p50 {s['p50_ms']:7.1f} ms  p95 {s['p95_ms']:7.1f} ms  p99 {s['p99_ms']:7.1f} ms  mean batch {s['mean_batch_size']}  ({s['requests']} requests, {s['errors']} errors)")
    print(f"c16_vs_best_batched {out['c16_vs_best_batched']} (target >= 0.9; back-to-back pairs {out['c16_vs_best_batched_pairs']}); "
          f"c=1, {out['c1_interleaved']['requests']} requests in turn with the detector: p50 {out['c1_p50_vs_single']}x its median (target <= 1.1), "
          f"p99 {out['c1_p99_vs_single_p99']}x its p99 (target <= 1.15), {out['c1_p99_vs_single']}x its median")
    print(f"from the rounds alone: c16_vs_best_batched {out['c16_vs_best_batched_unpaired']}, c1_p99_vs_single {out['c1_p99_vs_single_unpaired']}")
    print("c=1, mean ms per request: " + ", ".join(f"{k} {v}" for k, v in out["c1_mean_ms"].items()))
    return 0

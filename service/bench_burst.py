"""`streetorder bench serve --burst N`: the live endpoint under a burst, as a hostile or unlucky city would send it.

A real `streetorder serve` (the same subprocess as `bench serve`) is warmed up, then each round opens N
connections at once and sends one `POST /detect` on each (a camera fleet waking up together). While the burst
is in flight, a liveness probe opens a fresh connection to `/health` every 20 ms and a reviewer asks for
`GET /cases` every 100 ms. The figures are the issue's targets (issue 22): how long `/health` and the reviewer
took during the burst, how many requests were shed with 503 (with `Retry-After`) and how fast, and the p50/p99
of the accepted requests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .bench import DEFAULT_DATA, Service, _collector_paused, _metric, _pct, _requests


@dataclass
class Answer:
    status: int
    seconds: float
    retry_after: str | None = None


@dataclass
class Probe:
    """Latencies of one kind of request sent on a timer while the burst runs; a failure counts as its timeout."""

    seconds: list[float] = field(default_factory=list)
    failed: int = 0


async def send(port: int, request: bytes, timeout: float = 60.0) -> Answer:
    """One request on a fresh connection (as a probe or a waking camera opens one); status, time, Retry-After."""
    t = time.perf_counter()
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    try:
        writer.write(request)
        status_line = await asyncio.wait_for(reader.readline(), timeout)
        length, retry = 0, None
        while (line := await asyncio.wait_for(reader.readline(), timeout)) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"retry-after":
                retry = value.strip().decode()
        await asyncio.wait_for(reader.readexactly(length), timeout)
        return Answer(int(status_line.split()[1]), time.perf_counter() - t, retry)
    finally:
        writer.close()


def _get(port: int, path: str, key: str | None = None) -> bytes:
    head = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"] + ([f"X-API-Key: {key}"] if key else [])
    return ("\r\n".join(head) + "\r\n\r\n").encode()


async def _probe(port: int, request: bytes, every: float, stop: asyncio.Event, out: Probe, timeout: float = 10.0) -> None:
    while not stop.is_set():
        try:
            answer = await send(port, request, timeout)
            if answer.status == 200:
                out.seconds.append(answer.seconds)
            else:
                out.failed += 1
        except (OSError, asyncio.TimeoutError):
            out.failed += 1
            out.seconds.append(timeout)
        try:
            await asyncio.wait_for(stop.wait(), every)
        except asyncio.TimeoutError:
            pass


def burst_requests(blobs: list[bytes], key: str, port: int) -> list[bytes]:
    """Each image as one ready `POST /detect` request that closes its connection (a waking camera's)."""
    return [r.replace(b"\r\nContent-Type", b"\r\nConnection: close\r\nContent-Type", 1) for r in _requests(blobs, key, port)]


async def burst_once(port: int, requests: list[bytes], n: int, camera_key: str, reviewer_key: str) -> tuple[list[Answer], Probe, Probe]:
    stop = asyncio.Event()
    health, cases = Probe(), Probe()
    probes = [
        asyncio.create_task(_probe(port, _get(port, "/health"), 0.02, stop, health)),
        asyncio.create_task(_probe(port, _get(port, "/cases?limit=20", reviewer_key), 0.1, stop, cases)),
    ]
    await asyncio.sleep(0.05)  # the probes' first answers: the idle service
    answers = await asyncio.gather(*(send(port, requests[i % len(requests)]) for i in range(n)), return_exceptions=True)
    stop.set()
    await asyncio.gather(*probes)
    return [a if isinstance(a, Answer) else Answer(0, float("nan")) for a in answers], health, cases


def _server_side_refusals(metrics_text: str) -> dict:
    """The admission's 503s as the service timed them (`streetorder_request_seconds`, route "unmatched": refused
    before any route ran): how many, and how many within 50 and 100 ms. The client's own figure adds the
    connection and this bench's event loop, which share the cores."""
    buckets = {}
    for labels, value in _metric(metrics_text, "streetorder_request_seconds_bucket", 'route="unmatched"'):
        if 'status="503"' in labels and 'method="POST"' in labels:
            buckets[re.search(r'le="([^"]+)"', labels).group(1)] = value
    return {"count": buckets.get("+Inf", 0.0), "within_50ms": buckets.get("0.05", 0.0), "within_100ms": buckets.get("0.1", 0.0)}


def _ms(values: list[float], q: float) -> float | None:
    return round(_pct(values, q) * 1000, 1) if values else None


def run_burst_bench(model: str | None = None, data: Path = DEFAULT_DATA, images: int = 32, burst: int = 96, rounds: int = 3, env: dict[str, str] | None = None) -> dict:
    paths = sorted(p for p in Path(data).glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:images]
    if not paths:
        raise FileNotFoundError(f"bench serve --burst needs images in {data}")
    blobs = [p.read_bytes() for p in paths]
    answers: list[Answer] = []
    health, cases = Probe(), Probe()
    with tempfile.TemporaryDirectory(prefix="bench-burst-") as tmp:
        service = Service(model, dict(env or {}), Path(tmp))
        try:
            service.wait_ready()
            requests = burst_requests(blobs, service.keys["camera"], service.port)
            for r in requests[:16]:  # warm-up, one at a time: sessions, threads, the service's own timing of the detector
                asyncio.run(send(service.port, r))
            for k in range(rounds):
                if k:
                    time.sleep(2.0)  # the previous burst drains
                with _collector_paused():
                    got, h, c = asyncio.run(burst_once(service.port, requests, burst, service.keys["camera"], service.keys["admin"]))
                answers += got
                health.seconds += h.seconds
                health.failed += h.failed
                cases.seconds += c.seconds
                cases.failed += c.failed
            text = service.metrics()
        finally:
            service.stop()
    refused = _server_side_refusals(text)
    ok = [a.seconds for a in answers if a.status == 200]
    shed = [a for a in answers if a.status == 503]
    other: dict[str, int] = {}
    for a in answers:
        if a.status not in (200, 503):
            other[str(a.status)] = other.get(str(a.status), 0) + 1
    return {
        "burst": burst, "rounds": rounds, "requests": len(answers), "cpu": f"{os.cpu_count()} cores", "load_average": [round(x, 2) for x in os.getloadavg()],
        "accepted": len(ok), "accepted_p50_ms": _ms(ok, 50), "accepted_p99_ms": _ms(ok, 99), "accepted_max_ms": _ms(ok, 100),
        "shed_503": len(shed), "shed_with_retry_after": sum(1 for a in shed if a.retry_after), "shed_p50_ms": _ms([a.seconds for a in shed], 50),
        "shed_p99_ms": _ms([a.seconds for a in shed], 99), "shed_max_ms": _ms([a.seconds for a in shed], 100), "other_statuses": other,
        "shed_server_side": refused,
        "health_probes": len(health.seconds), "health_failed": health.failed, "health_p50_ms": _ms(health.seconds, 50), "health_p99_ms": _ms(health.seconds, 99),
        "health_max_ms": _ms(health.seconds, 100),
        "reviewer_cases": len(cases.seconds), "reviewer_failed": cases.failed, "reviewer_p50_ms": _ms(cases.seconds, 50), "reviewer_max_ms": _ms(cases.seconds, 100),
    }


def print_burst(out: dict) -> None:
    print(f"burst of {out['burst']} concurrent POST /detect x {out['rounds']} rounds ({out['cpu']}, load average {out['load_average']})")
    print(f"accepted {out['accepted']}: p50 {out['accepted_p50_ms']} ms, p99 {out['accepted_p99_ms']} ms, max {out['accepted_max_ms']} ms (target p99 <= 2000)")
    print(f"shed 503 {out['shed_503']} ({out['shed_with_retry_after']} with Retry-After): p50 {out['shed_p50_ms']} ms, p99 {out['shed_p99_ms']} ms, max {out['shed_max_ms']} ms (target <= 100); other statuses {out['other_statuses']}")
    r = out["shed_server_side"]
    print(f"  in the service (from its first byte to its answer): {r['within_100ms']} of {r['count']:.0f} refusals within 100 ms, {r['within_50ms']} within 50 ms")
    print(f"/health during the bursts: {out['health_probes']} probes, p50 {out['health_p50_ms']} ms, p99 {out['health_p99_ms']} ms, max {out['health_max_ms']} ms (target <= 200), {out['health_failed']} failed")
    print(f"reviewer GET /cases: {out['reviewer_cases']} requests, p50 {out['reviewer_p50_ms']} ms, max {out['reviewer_max_ms']} ms, {out['reviewer_failed']} failed")


def cmd_bench_burst(args: argparse.Namespace) -> int:
    """`streetorder bench serve --burst N`: run the bursts and print the figures (one JSON object with --json)."""
    out = run_burst_bench(args.model, data=Path(args.data), images=args.images, burst=args.burst, rounds=args.rounds)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print_burst(out)
    return 0

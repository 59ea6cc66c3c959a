"""`streetorder bench streams`: what pulling RTSP streams costs, and how many streamed cameras one service process
sustains at one sample every 2 s.

The stream: OpenCV's walkway video (`../shared/data/video/vtest.avi`, real people walking), scaled to 1080p, played
forward then backward, encoded once (cached under var/bench/) as H.264 at 25 fps with a key frame every 2 s
(GOP 50), as city cameras' main streams commonly are; x264 `superfast` keeps CABAC and the deblocking filter, so
decoding costs what a camera's stream costs. GStreamer's RTSP server (`pipeline.bench.rtsp_server`) plays it to
every reader from its own pipeline, on the same machine.

1. Decode cost: N readers in this process, `decode: keyframes` and then `decode: all`, CPU time of the process per
   sample (the readers' threads only; the server runs in its own process, measured apart).
2. The service: `streetorder serve` with N cameras streaming (decode auto: key frames, the GOP is every_s), N
   rising; per N the samples the intake processed per second against the N/2 wanted, the samples lost (superseded
   by a newer picture of the camera while the detector was busy, or shed), and the service's CPU per processed
   sample. A count is sustained when >= 95% of the wanted samples are processed.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import yaml

from pipeline.bench.rtsp_server import RtspServer, encode_video, h264_file
from pipeline.config import StreamConfig
from pipeline.paths import REPO, SHARED_DATA
from pipeline.source.streams import StreamReader

from .bench import Service, _free_port, _metric

VIDEO = SHARED_DATA / "video" / "vtest.avi"
CLIP = REPO / "var" / "bench" / "walkway-1080p25-gop50.mp4"


def build_clip(path: Path = CLIP) -> Path:
    """The 1080p stream, once (about a minute of encoding on 2 cores)."""
    if path.exists():
        return path
    import av
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(VIDEO)) as c:
        frames = [cv2.resize(f.to_ndarray(format="bgr24"), (1920, 1080), interpolation=cv2.INTER_LINEAR) for f in c.decode(video=0)]
    tmp = path.with_suffix(".part.mp4")
    encode_video([*frames, *frames[::-1]], tmp, fps=25, gop=50, size=(1920, 1080), preset="superfast", crf=26)
    tmp.rename(path)
    return path


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def decode_cost(server: RtspServer, n: int, mode: str, seconds: float, warmup: float = 4.0) -> dict:
    """N readers decoding `mode` for `seconds` (after `warmup`): CPU ms per sample, per decoded frame."""
    stop = threading.Event()
    readers = [StreamReader(f"bench-{i}", StreamConfig(url=server.url("/walkway"), every_s=2, decode=mode, timeout_s=10)) for i in range(n)]

    def drain(reader: StreamReader) -> None:
        for _ in reader.samples(stop):
            pass

    threads = [threading.Thread(target=drain, args=(r,), daemon=True) for r in readers]
    for t in threads:
        t.start()
    time.sleep(warmup)
    s0, d0, c0, srv0, w0 = sum(r.status.samples for r in readers), sum(r.status.decoded for r in readers), time.process_time(), _cpu_s(server.proc.pid), time.monotonic()
    time.sleep(seconds)
    s1, d1, c1, srv1, w1 = sum(r.status.samples for r in readers), sum(r.status.decoded for r in readers), time.process_time(), _cpu_s(server.proc.pid), time.monotonic()
    stop.set()
    for t in threads:
        t.join(15)
    samples, decoded, cpu, wall = s1 - s0, d1 - d0, c1 - c0, w1 - w0
    return {
        "readers": n, "decode": mode, "seconds": round(wall, 1), "samples": samples, "decoded_frames": decoded,
        "cpu_ms_per_sample": round(cpu / samples * 1000, 1) if samples else None,
        "cpu_ms_per_decoded_frame": round(cpu / decoded * 1000, 2) if decoded else None,
        "readers_cpu_share_of_one_core": round(cpu / wall, 3),
        "server_cpu_share_of_one_core": round((srv1 - srv0) / wall, 3),
        "samples_per_s_wanted": n / 2, "samples_per_s": round(samples / wall, 2), "load_average": _load(),
    }


def _config(n: int, url: str) -> dict:
    zone = {"id": "watch", "kind": "garbage_watch", "coords": "normalized", "polygon": [[0.05, 0.3], [0.95, 0.3], [0.95, 0.98], [0.05, 0.98]]}
    return {"cameras": [
        {"id": f"cam-{i:03d}", "location": {"district": "bench", "point": f"P{i:03d}"}, "resolution": [1920, 1080], "zones": [zone],
         "stream": {"url": url, "every_s": 2, "timeout_s": 15}}
        for i in range(n)
    ]}


def service_run(server: RtspServer, n: int, seconds: float, model: str | None, warmup: float = 12.0) -> dict:
    """`streetorder serve` with N streamed cameras: samples processed and shed per second, CPU."""
    with tempfile.TemporaryDirectory(prefix="bench-streams-") as tmp:
        config = Path(tmp) / "cameras.yaml"
        config.write_text(yaml.safe_dump(_config(n, server.url("/walkway"))))
        service = Service(model, {"STREETORDER_STREAMS": "1"}, Path(tmp), config=config)
        try:
            service.wait_ready()
            time.sleep(warmup)  # connects, first key frames, the model's first calls

            def counts() -> tuple[float, float, float, float]:
                text = service.metrics()
                total = lambda outcome: sum(v for _, v in _metric(text, "streetorder_stream_intake_total", f'outcome="{outcome}"'))  # noqa: E731
                lost = total("shed") + total("superseded")
                return total("processed") + total("journaled"), lost, sum(v for _, v in _metric(text, "streetorder_stream_samples_total")), _cpu_s(service.proc.pid)

            p0, sh0, s0, c0 = counts()
            w0 = time.monotonic()
            time.sleep(seconds)
            p1, sh1, s1, c1 = counts()
            wall = time.monotonic() - w0
            up = sum(v for _, v in _metric(service.metrics(), "streetorder_stream_state", 'state="up"'))
        finally:
            service.stop()
    processed = (p1 - p0) / wall
    return {
        "cameras": n, "seconds": round(wall, 1), "samples_per_s_wanted": n / 2, "samples_per_s": round((s1 - s0) / wall, 2),
        "processed_per_s": round(processed, 2), "lost_per_s": round((sh1 - sh0) / wall, 2), "streams_up": int(up),
        "service_cpu_share_of_one_core": round((c1 - c0) / wall, 2), "cpu_ms_per_processed_sample": round((c1 - c0) / (p1 - p0) * 1000, 1) if p1 > p0 else None,
        "sustained": processed >= 0.95 * n / 2,
        "load_average": _load(),
    }


def run(cameras: list[int], readers: list[int], seconds: float, model: str | None) -> dict:
    clip = build_clip()
    out: dict = {"machine": f"{os.cpu_count()} cores, load average {_load()} at start (shared with other jobs)", "stream": "1920x1080 H.264 25 fps, key frame every 2 s (GOP 50), x264 superfast", "decode": [], "service": []}
    with RtspServer(_free_port(), {"/walkway": h264_file(clip)}) as server:
        for n in readers:
            for mode in ("keyframes", "all"):
                out["decode"].append(decode_cost(server, n, mode, seconds))
        for n in cameras:
            out["service"].append(service_run(server, n, seconds * 1.5, model))
    out["machine_after"] = f"load average {_load()} at the end"
    return out


def cmd_bench_streams(args: argparse.Namespace) -> int:
    out = run([int(x) for x in args.cameras.split(",")], [int(x) for x in args.readers.split(",")], args.seconds, args.model)
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"{out['machine']}; {out['stream']}")
    for d in out["decode"]:
        print(f"decode {d['decode']:>9}, {d['readers']:>2} readers: {d['cpu_ms_per_sample']} ms CPU per sample ({d['cpu_ms_per_decoded_frame']} per decoded frame), "
              f"{d['samples_per_s']}/{d['samples_per_s_wanted']} samples/s, readers {d['readers_cpu_share_of_one_core']} core, server {d['server_cpu_share_of_one_core']} core, load {d['load_average']}")
    for s in out["service"]:
        print(f"serve, {s['cameras']:>3} cameras every 2 s: processed {s['processed_per_s']}/{s['samples_per_s_wanted']} per s, lost {s['lost_per_s']}/s, "
              f"up {s['streams_up']}, service CPU {s['service_cpu_share_of_one_core']} core ({s['cpu_ms_per_processed_sample']} ms per sample), "
              f"sustained {s['sustained']}, load {s['load_average']}")
    print(out["machine_after"])
    return 0

"""`streetorder bench serve --first-frames`: a camera's first frame after a start, with and without the warm-up.

OpenVINO compiles a model once per input rectangle, and a model is loaded with only the square compiled. Without
the warm-up (`STREETORDER_WARM_UP_S=0`) the first frame of each 16:9 or 4:3 camera waits for that compile on the
detector's thread, about 0.25-0.3 s a model on 2 cores, and so does everything queued behind it. The bench starts
a real `streetorder serve` on a city of cameras of common resolutions, once with the warm-up off and once on, and
times `/ready` after the start and each camera's first and second `POST /frames`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import cv2
import httpx
import yaml

from pipeline.paths import SHARED_DATA

from .bench import Service

PHOTO = SHARED_DATA / "streets-in" / "images" / "IMG20240615122056_jpg.jpg"  # a real street with parked motorbikes
T0 = datetime(2026, 11, 21, 9, 0, tzinfo=timezone(timedelta(hours=8)))
# (camera, width, height, the rule whose zone it has): what a city's cameras send; the square needs no compile
CAMERAS = (
    ("vending-1080p", 1920, 1080, "street_vending"),  # vending and parking zones run the cue model too
    ("garbage-720p", 1280, 720, "garbage"),
    ("parking-4x3", 1280, 960, "non_motor_parking"),
    ("garbage-square", 640, 640, "garbage"),
)


def city(path: Path) -> None:
    """A camera config of `CAMERAS`, each with one zone of its rule over the lower half of its frame."""
    from pipeline.rules import RULES

    cameras = [
        {
            "id": cam, "location": {"district": "西湖区", "point": cam}, "resolution": [w, h],
            "zones": [{"id": "z", "kind": RULES[rule].zone_kinds[-1].name, "polygon": [[0, h // 2], [w, h // 2], [w, h], [0, h]]}],
        }
        for cam, w, h, rule in CAMERAS
    ]
    path.write_text(yaml.safe_dump({"cameras": cameras}, allow_unicode=True), encoding="utf-8")


def frames(photo: Path = PHOTO) -> dict[str, bytes]:
    """The real photo as each camera's frame (`as_camera_frame`: cropped to its aspect, scaled), as JPEG."""
    from pipeline.bench.backends import as_camera_frame
    from pipeline.source.images import load_image

    image = load_image(photo)
    return {cam: cv2.imencode(".jpg", as_camera_frame(image, w, h), [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes() for cam, w, h, _ in CAMERAS}


def one_start(warm_up: bool, blobs: dict[str, bytes], model: str | None) -> dict:
    """Start the service, wait for /ready, then each camera's first frame and its second, one at a time."""
    with tempfile.TemporaryDirectory(prefix="bench-first-frames-") as tmp:
        config = Path(tmp) / "cameras.yaml"
        city(config)
        env = {"STREETORDER_LATENCY_BUDGET_S": "60"} | ({} if warm_up else {"STREETORDER_WARM_UP_S": "0"})
        started = time.perf_counter()
        service = Service(model, env, Path(tmp), config=config)
        try:
            service.wait_ready(timeout_s=300)
            ready_s = time.perf_counter() - started
            warmed = httpx.get(f"{service.url}/models/current", headers={"X-API-Key": service.keys["admin"]}, timeout=30).json()["warm_up"]
            out: dict[str, dict[str, float]] = {}
            with httpx.Client(base_url=service.url, headers={"X-API-Key": service.keys["camera"]}, timeout=120) as client:
                for k in range(2):
                    for cam, *_ in CAMERAS:
                        t = time.perf_counter()
                        r = client.post("/frames", data={"camera_id": cam, "taken_at": (T0 + timedelta(seconds=2 * k)).isoformat()}, files={"image": ("f.jpg", blobs[cam], "image/jpeg")})
                        took = time.perf_counter() - t
                        if r.status_code != 200:
                            raise RuntimeError(f"POST /frames for {cam} answered {r.status_code}: {r.text[:300]}")
                        out.setdefault(cam, {})["first_ms" if k == 0 else "second_ms"] = round(took * 1000, 1)
        finally:
            service.stop()
    return {"ready_s": round(ready_s, 2), "warm_up": warmed, "cameras": out, "first_frames_ms": round(sum(c["first_ms"] for c in out.values()), 1)}


def run(model: str | None = None, rounds: int = 2) -> dict:
    blobs = frames()
    runs: dict[str, list[dict]] = {"off": [], "on": []}
    for r in range(rounds):  # off and on in turn, the order swapped each round
        for mode in ("off", "on") if r % 2 == 0 else ("on", "off"):
            runs[mode].append(one_start(mode == "on", blobs, model))

    def summary(mode: str) -> dict:
        rs = runs[mode]
        return {
            "ready_s": round(statistics.median(r["ready_s"] for r in rs), 2),
            "first_frames_ms": round(statistics.median(r["first_frames_ms"] for r in rs), 1),
            "per_camera": {cam: {k: round(statistics.median(r["cameras"][cam][k] for r in rs), 1) for k in ("first_ms", "second_ms")} for cam, *_ in CAMERAS},
            "runs": rs,
        }

    off, on = summary("off"), summary("on")
    return {
        "cameras": [f"{cam} {w}x{h} {rule}" for cam, w, h, rule in CAMERAS],
        "rounds": rounds,
        "cpu": f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at the end",
        "warm_up_off": off,
        "warm_up_on": on,
        "first_frames_on_vs_off": round(on["first_frames_ms"] / off["first_frames_ms"], 3),
        "ready_s_added": round(on["ready_s"] - off["ready_s"], 2),
    }


def cmd_bench_first_frames(args: argparse.Namespace) -> int:
    out = run(args.model, rounds=args.rounds)
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    for mode in ("warm_up_off", "warm_up_on"):
        s = out[mode]
        cams = ", ".join(f"{cam} {v['first_ms']:.0f} then {v['second_ms']:.0f} ms" for cam, v in s["per_camera"].items())
        print(f"{mode}: ready {s['ready_s']} s after the start; first frames {s['first_frames_ms']:.0f} ms in all ({cams})")
    print(f"first frames with the warm-up / without: {out['first_frames_on_vs_off']}; ready later by {out['ready_s_added']} s")
    return 0

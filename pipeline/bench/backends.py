"""Serving-path benchmarks that print their figures: backends side by side, detector latency and throughput,
engine overhead.

Machines are noisy, so every comparison is a ratio of runs measured side by side in one process, interleaved
round by round rather than one after the other.
"""

from __future__ import annotations

import importlib.util
import statistics
import time
import tracemalloc
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import numpy as np

from ..detect import DetectorSettings, load_detector
from ..detect.variants import VARIANTS
from ..engine import Engine
from ..source.frames import Frame, video_frames, video_start
from ..source.images import load_image
from ..paths import SAMPLE_CONFIG, SAMPLE_FOOTAGE, SHARED_DATA


def _interleaved(cases: dict[str, Callable[[], int]], rounds: int) -> dict[str, list[float]]:
    """Seconds per item for each case, measured round-robin so drift hits all cases alike."""
    out: dict[str, list[float]] = {k: [] for k in cases}
    for fn in cases.values():
        fn()  # warm-up
    for _ in range(rounds):
        for name, fn in cases.items():
            t = time.perf_counter()
            n = fn()
            out[name].append((time.perf_counter() - t) / n)
    return out


def backends_bench(model: str | None, images: list[Path], rounds: int = 2, threads: int | None = None, pause_s: float = 0.005) -> dict:
    """Every available backend at batch 1 and the model's own size, on real images, timed two ways in one run:

    - as served (`ms_per_image`, `speedup_vs_ultralytics`): backends take turns a run of images at a time
      (`_served_ms`), so each is timed in the state it has when it is the only runtime at work, as in the service
      and the night job; the turns alternate, so drift hits all of them alike;
    - image by image (`..._interleaved`): each image through every backend before the next, so every call follows
      another runtime's. On this 2-core machine such a call is 1-2.5 ms slower than in a run of its own and gets
      back to speed over several calls (whatever the pause before it), so this measures the switching as much as
      the model.

    A short untimed pause before each call lets the previous call's worker threads stop spinning, as between live
    frames."""
    imgs = [load_image(p) for p in images]
    if not imgs:
        raise FileNotFoundError("backend bench: no images")
    onnx = load_detector(model, backend="onnx", settings=DetectorSettings(conf=0.25), threads=threads)
    settings = DetectorSettings(conf=0.25, imgsz=onnx.imgsz)
    dets, skipped = {"onnx": onnx}, {}
    for name in ("openvino", *VARIANTS, "ultralytics"):
        if importlib.util.find_spec(name.split("-")[0]) is None:
            skipped[name] = "not installed"
            continue
        try:
            dets[name] = load_detector(model, backend=name, settings=settings, threads=threads)
        except Exception as e:  # e.g. no model.pt beside the .onnx
            skipped[name] = f"{type(e).__name__}: {e}"
    for det in dets.values():  # warm-up
        det.detect([imgs[0]])
        det.detect([imgs[0]])
    served = _served_ms(dets, imgs, rounds, pause_s)
    switching = _interleaved_ms(dets, imgs, rounds, pause_s)
    auto = load_detector(model, backend="auto", settings=settings, threads=threads)
    choice = getattr(auto, "auto_choice", None)
    return {
        "imgsz": onnx.imgsz,
        "images": len(imgs),
        "rounds": rounds,
        "threads": threads or "all cores",
        **_figures(served),
        **{f"{k}_interleaved": v for k, v in _figures(switching).items()},
        "skipped": skipped,
        "auto": {"backend": auto.backend, "reason": choice.reason if choice else None},
        "load_average": _load(),
    }


def cascade_bench(model: str | None, images: list[Path] | list[np.ndarray], rounds: int = 2, threads: int | None = None, pause_s: float = 0.005) -> dict:
    """A vending or parking camera's frame: the street model plus its cue model (`load_cue_cascade`), batch 1,
    before (both models f32 on OpenVINO with the square letterbox: what `auto` served before the variants and the
    rectangle; and f32 on onnxruntime) and now (`auto`: each model's fastest accepted variant on this machine, the
    rectangle), timed as served and image by image (as `backends_bench`). `images`: files, or frames already in
    memory."""
    from ..detect.cascade import load_cue_cascade

    imgs = [load_image(p) if isinstance(p, Path) else p for p in images]
    square = DetectorSettings(conf=0.25, rect=False)
    dets = {
        "openvino": load_cue_cascade(model, backend="openvino", settings=square, threads=threads),
        "onnx": load_cue_cascade(model, backend="onnx", settings=square, threads=threads),
        "auto": load_cue_cascade(model, backend="auto", settings=DetectorSettings(conf=0.25), threads=threads),
    }
    for det in dets.values():
        det.detect(imgs[:1])
    served, switching = _served_ms(dets, imgs, rounds, pause_s), _interleaved_ms(dets, imgs, rounds, pause_s)
    h, w = imgs[0].shape[:2]

    def figures(med: dict[str, float]) -> dict:
        ms = {"before: openvino f32, square": round(med["openvino"], 1), "onnx f32, square": round(med["onnx"], 1), "auto": round(med["auto"], 1)}
        return {"ms_per_frame": ms, "auto_vs_before": round(med["auto"] / med["openvino"], 2)}

    return {
        "images": len(imgs),
        "size": f"{w}x{h}" if all(im.shape[:2] == (h, w) for im in imgs) else "mixed",
        "rounds": rounds,
        "threads": threads or "all cores",
        **figures(served),
        **{f"{k}_interleaved": v for k, v in figures(switching).items()},
        "auto_backend": getattr(dets["auto"], "backend", "?"),
        "load_average": _load(),
    }


def camera_frames(n: int = 20, width: int = 1920, height: int = 1080) -> list[np.ndarray]:
    """Real streets-in street scenes as a 16:9 camera's frames: what a vending or parking camera sends, where
    garbage-cn's photos are square."""
    paths = sorted((SHARED_DATA / "streets-in" / "images").glob("*.jpg"))[:: 7][:n]
    return [as_camera_frame(load_image(p), width, height) for p in paths]


def as_camera_frame(img: np.ndarray, width: int = 1920, height: int = 1080) -> np.ndarray:
    """`img` centre-cropped to the camera's aspect ratio and resized to its frame size."""
    import cv2

    h, w = img.shape[:2]
    if w / h >= width / height:
        cw = round(h * width / height)
        img = img[:, (w - cw) // 2 : (w - cw) // 2 + cw]
    else:
        ch = round(w * height / width)
        img = img[(h - ch) // 2 : (h - ch) // 2 + ch]
    return cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)


def _figures(med: dict[str, float]) -> dict[str, dict[str, float]]:
    """Median ms per image of each backend, its time against onnxruntime's and, with torch in the run, the
    speed-up over ultralytics torch."""
    out = {"ms_per_image": {k: round(v, 1) for k, v in med.items()}, "time_vs_onnx": {k: round(v / med["onnx"], 2) for k, v in med.items()}}
    if "ultralytics" in med:
        out["speedup_vs_ultralytics"] = {k: round(med["ultralytics"] / v, 2) for k, v in med.items()}
    return out


def _served_ms(dets: dict, imgs: list[np.ndarray], rounds: int, pause_s: float, run: int = 10, opened: bool = True) -> dict[str, float]:
    """Median ms per image of each detector at batch 1 as it runs when it is the only runtime at work: the
    detectors take turns `run` images at a time, each turn opened by one untimed call (`opened`: the one that
    pays for the previous runtime's), turns alternating through every round."""
    times: dict[str, list[float]] = {k: [] for k in dets}
    for _ in range(rounds):
        for start in range(0, len(imgs), run):
            part = imgs[start : start + run]
            for name, det in dets.items():
                if opened:
                    det.detect(part[:1])
                for im in part:
                    time.sleep(pause_s)
                    t = time.perf_counter()
                    det.detect([im])
                    times[name].append(time.perf_counter() - t)
    return {k: statistics.median(v) * 1000 for k, v in times.items()}


def _interleaved_ms(dets: dict, imgs: list[np.ndarray], rounds: int, pause_s: float) -> dict[str, float]:
    """Median ms per image of each detector at batch 1, taken image by image in turn (a load change hits all
    alike; every call follows another runtime's)."""
    return _served_ms(dets, imgs, rounds, pause_s, run=1, opened=False)


def _load() -> list[float]:
    import os

    return [round(x, 2) for x in os.getloadavg()]


def detector_bench(model: str | None, images: list[Path], rounds: int = 5, backend: str = "auto") -> dict:
    """Per-image latency at batch 1 vs batch 8, and with 1 thread vs all cores."""
    imgs = [load_image(p) for p in images[:8]]
    one = load_detector(model, backend=backend, settings=DetectorSettings(conf=0.25), threads=1)
    full = load_detector(model, backend=backend, settings=DetectorSettings(conf=0.25))
    def singly(det) -> Callable[[], int]:
        def run() -> int:
            for im in imgs:
                det.detect([im])
            return len(imgs)

        return run

    def batched() -> int:
        full.detect(imgs)
        return len(imgs)

    cases = {"batch1_threads1": singly(one), "batch1_all_threads": singly(full), "batch8_all_threads": batched}
    t = _interleaved(cases, rounds)
    med = {k: statistics.median(v) * 1000 for k, v in t.items()}
    return {
        "backend": getattr(full, "backend", backend),
        "imgsz": full.imgsz,
        "ms_per_image": {k: round(v, 1) for k, v in med.items()},
        "images_per_s": {k: round(1000 / v, 1) for k, v in med.items()},
        "speedup_all_threads_vs_1": round(med["batch1_threads1"] / med["batch1_all_threads"], 2),
        "speedup_batch8_vs_batch1": round(med["batch1_all_threads"] / med["batch8_all_threads"], 2),
        "rounds": rounds,
    }


def engine_bench(config: Path, video: Path, camera_id: str, model: str | None, seconds: float = 120.0, backend: str = "auto") -> dict:
    """Time per frame spent in detection vs in the engine (zones, tracking, rules, incidents), and peak memory."""
    from zoneinfo import ZoneInfo

    detector = load_detector(model, backend=backend, settings=DetectorSettings(conf=0.25))
    engine = Engine(config)
    tz = ZoneInfo(engine.config.camera(camera_id).timezone)
    frames = []
    for f in video_frames(video, video_start(video, tz), every_s=2.0, camera_id=camera_id):
        frames.append(f)
        if (f.at - frames[0].at) >= timedelta(seconds=seconds):
            break
    det_t, eng_t, detections = [], [], []
    for f in frames:
        t0 = time.perf_counter()
        [d] = detector.detect([f.image])
        t1 = time.perf_counter()
        engine.process(Frame(f.image, f.at, camera_id), d)
        eng_t.append(time.perf_counter() - t1)
        det_t.append(t1 - t0)
        detections.append(d)
    # Memory in a second pass over a fresh engine: tracemalloc slows Python code severalfold, which would
    # inflate the engine's share of frame time if it ran during the timing pass.
    engine = Engine(config)
    tracemalloc.start()
    for f, d in zip(frames, detections):
        engine.process(Frame(f.image, f.at, camera_id), d)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    det_ms, eng_ms = statistics.median(det_t) * 1000, statistics.median(eng_t) * 1000
    return {
        "frames": len(frames),
        "detect_ms_per_frame": round(det_ms, 1),
        "engine_ms_per_frame": round(eng_ms, 2),
        "engine_share_of_frame_time": round(eng_ms / (det_ms + eng_ms), 3),
        "python_heap_peak_mb": round(peak / 1e6, 1),
    }


# (boxes in a, boxes in b): the serving path calls box IoU on a single pair (incident matching, case verification)
# or a frame's detections against one box (re-linking still objects, fixtures); N x M is evaluation and training.
GEOMETRY_SIZES = ((1, 1), (10, 1), (50, 1), (10, 10), (50, 50))


def geometry_bench(rounds: int = 15, calls: int = 100) -> dict:
    """Box IoU as `pipeline.geometry.box_iou` does it (hand-written numpy) vs `supervision.box_iou_batch` as a
    drop-in (same inputs, float64 out), on float32 boxes as detections carry them, all sizes and both versions
    interleaved in one run."""
    import supervision as sv

    from ..geometry import box_iou

    def sv_iou(a, b):
        a, b = np.asarray(a, dtype=np.float64).reshape(-1, 4), np.asarray(b, dtype=np.float64).reshape(-1, 4)
        return sv.box_iou_batch(a, b).astype(np.float64)

    rng = np.random.default_rng(0)

    def boxes(n: int) -> np.ndarray:
        xy = rng.uniform(0, 1800, (n, 2))
        return np.hstack([xy, xy + rng.uniform(10, 300, (n, 2))]).astype(np.float32)

    def repeat(fn, a, b) -> Callable[[], int]:
        def run() -> int:
            for _ in range(calls):
                fn(a, b)
            return calls

        return run

    cases: dict[str, Callable[[], int]] = {}
    for n, m in GEOMETRY_SIZES:
        a, b = boxes(n), boxes(m)
        cases[f"{n}x{m} numpy"] = repeat(box_iou, a, b)
        cases[f"{n}x{m} supervision"] = repeat(sv_iou, a, b)
    t = _interleaved(cases, rounds)
    out: dict = {"calls_per_round": calls, "rounds": rounds, "box_iou_ms_per_call": {}}
    for n, m in GEOMETRY_SIZES:
        k = f"{n}x{m}"
        ms = {impl: statistics.median(t[f"{k} {impl}"]) * 1000 for impl in ("numpy", "supervision")}
        out["box_iou_ms_per_call"][k] = {
            **{impl: round(v, 4) for impl, v in ms.items()},
            "supervision_vs_numpy": round(ms["supervision"] / ms["numpy"], 2),
        }
    return out


def run_all(model: str | None, backend: str = "auto", images: int = 30, data: Path | None = None, backends_only: bool = False, rounds: int = 2) -> dict:
    data = data or SHARED_DATA / "garbage-cn" / "val" / "images"
    real = sorted(p for p in data.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:images]
    if not real:
        raise FileNotFoundError(f"no images in {data} for the backend comparison (use --data)")
    samples = sorted((SAMPLE_FOOTAGE / "patrol").glob("*.jpg"))
    samples = (samples * 2)[:8]
    lane = SAMPLE_FOOTAGE / "cam-lane" / "lane_20261120_220000.mp4"
    first = {
        "load_average_before": _load(),
        "backends": backends_bench(model, real, rounds=rounds),
        "cascade": cascade_bench(model, real[:20], rounds=rounds),
        "cascade_camera_1080p": cascade_bench(model, camera_frames(20), rounds=rounds),
    }
    if backends_only:
        return first | {"cpu": _cpu()}
    return first | {
        "detector": detector_bench(model, samples, backend=backend),
        "engine": engine_bench(SAMPLE_CONFIG, lane, "cam-lane", model, backend=backend),
        "geometry": geometry_bench(),
        "cpu": _cpu(),
    }


def _cpu() -> str:
    import os
    import platform

    return f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}"


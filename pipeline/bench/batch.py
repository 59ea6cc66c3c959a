"""`streetorder bench batch`: the night job against the naive way, on a long static night recording and a busy
scene, with planted violations counted.

Inputs are built once from real images in ../shared and cached under var/bench/:
- a 1080p, 25 fps, H.264 (GOP 50) recording of a night street (a streets-in street made dark, infrared-like gray,
  with sensor noise and brightness drift) where real garbage piles from garbage-cn appear and disappear: four stay
  longer than the garbage rule's dwell (the planted violations) and one is gone before it (must give nothing);
- `../shared/data/video/vtest.avi` (people walking through a plaza).

Each input goes through the night job as `streetorder run` runs it (`night.job.run_batch`: decoding as the file
allows, the change gate, the detector, the engine and a fresh SQLite ledger), and through the naive way a user
would write it: ultralytics `YOLO(model.onnx).predict(source=video, vid_stride=50, stream=True)`, same model.
`--today` adds the job as it was before this change (every frame decoded, the detector on every sample).
The machine may be shared: compare the ratios, which are measured side by side in one run. Each job runs
`JOB_RUNS` times, like for like and as shipped in turn, and its median is the figure (every run's time is in
the JSON); the naive loop, a minute long where the job takes seconds, runs once.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import cv2
import numpy as np

from ..geometry import box_iou
from ..source.images import load_image
from ..paths import REPO, SHARED_DATA
from .backends import as_camera_frame
from .nightclip import NightLook, Planted, night_gray, write_night_clip

BENCH_DIR = REPO / "var" / "bench"
VTEST = SHARED_DATA / "video" / "vtest.avi"
W, H = 1920, 1080
GARBAGE_DWELL_S = 180
EVERY_S = 2.0
JOB_RUNS = 3  # each job's time is the median of this many runs (the naive loop, a minute long, runs once)
BACKGROUNDS = ("IMG-20240615-WA0055_jpg.jpg", "IMG-20240615-WA0003_jpg.jpg", "IMG-20240615-WA0004_jpg.jpg", "IMG-20240615-WA0005_jpg.jpg", "IMG-20240615-WA0006_jpg.jpg")
LOOK = NightLook(noise_sigma=5.0, gain_drift=0.12, offset_drift=8.0, drift_period_s=900.0)
# (appear, vanish) as shares of the recording, and where the pile stands (top-left, 1080p pixels)
EVENTS = (((0.07, 0.40), (180, 700)), ((0.22, 0.56), (760, 780)), ((0.50, 0.533), (1250, 760)), ((0.61, 0.87), (1250, 760)), ((0.72, 1.01), (420, 800)))
DECOY = 2  # index of the pile that is gone before the dwell time: no violation
# the busy street: traffic on two lanes (their tops), piles on the pavement below them; the decoy stays 7% of the
# clip, while no pile stands beside it (two piles side by side can be seen as one)
BUSY_LANES = (400, 590)
BUSY_EVENTS = (((0.08, 0.55), (120, 830)), ((0.30, 0.90), (620, 830)), ((0.02, 0.09), (1100, 830)), ((0.60, 1.01), (1480, 830)))
BUSY_DECOY = 2
BUSY_DWELL_S = 45
BUSY_BACKGROUNDS = ("IMG-20240615-WA0055_jpg.jpg", "IMG-20240615-WA0003_jpg.jpg", "IMG-20240615-WA0004_jpg.jpg")

CONFIG = """# streetorder bench batch: the cameras of its generated inputs
cameras:
  - id: cam-night
    name: static night street (generated)
    location: {{district: 西湖区, street: 北山街道, point: 夜间测试街}}
    owner: 张伟
    resolution: [1920, 1080]
    zones:
      - {{id: street, kind: garbage_watch, polygon: [[0, 560], [1920, 560], [1920, 1080], [0, 1080]]}}
  - id: cam-vtest
    name: vtest plaza
    location: {{district: 上城区, street: 湖滨街道, point: 广场}}
    owner: 王强
    resolution: [768, 576]
    zones:
      - {{id: plaza, kind: garbage_watch, polygon: [[0, 200], [768, 200], [768, 576], [0, 576]]}}
  - id: cam-busy
    name: busy day street (generated)
    location: {{district: 拱墅区, street: 米市巷街道, point: 繁忙测试街}}
    owner: 李娜
    resolution: [1920, 1080]
    zones:
      - {{id: road, kind: garbage_watch, polygon: [[0, 400], [1920, 400], [1920, 1080], [0, 1080]], overrides: {{garbage: {{min_dwell_s: {busy_dwell}}}}}}}
rules:
  garbage: {{min_dwell_s: {dwell}}}
"""


@dataclass(frozen=True)
class NightInput:
    video: Path
    config: Path
    planted: list[dict]  # the violations: box, appear_s, vanish_s
    decoys: list[dict]
    seconds: float


def _crops(limit: int = 200) -> list[np.ndarray]:
    """Garbage piles (class 0) cut from garbage-cn train images by their labels, largest first per image."""
    root = SHARED_DATA / "garbage-cn" / "train"
    out = []
    for label in sorted((root / "labels").glob("*.txt")):
        rows = [r.split() for r in label.read_text().splitlines() if r.strip()]
        rows = [list(map(float, r[1:5])) for r in rows if r[0] == "0"]
        if len(rows) != 1:  # one pile alone in the picture: a clean crop
            continue
        img_path = root / "images" / f"{label.stem}.jpg"
        if not img_path.is_file():
            continue
        img = load_image(img_path)
        ih, iw = img.shape[:2]
        cx, cy, bw, bh = rows[0]
        x1, y1, x2, y2 = int((cx - bw / 2) * iw), int((cy - bh / 2) * ih), int((cx + bw / 2) * iw), int((cy + bh / 2) * ih)
        if x2 - x1 < 120 or y2 - y1 < 90 or bw > 0.8 or bh > 0.8:
            continue
        out.append(img[max(0, y1) : y2, max(0, x1) : x2])
        if len(out) >= limit:
            break
    return out


def _street(detector, look: NightLook) -> np.ndarray:
    """A real street in which the model sees no garbage at all (not at score 0.1, not at either end of the
    brightness drift, not through the noise), as a 1080p night picture: every garbage incident on it is planted."""
    rng = np.random.default_rng(0)
    for name in BACKGROUNDS:
        img = as_camera_frame(load_image(SHARED_DATA / "streets-in" / "images" / name), W, H)
        night = night_gray(img, gain=0.35, offset=10)
        clean = True
        for gain, offset in ((1.0, 0.0), (1 + look.gain_drift, look.offset_drift), (1 - look.gain_drift, -look.offset_drift), (1 + look.gain_drift, -look.offset_drift), (1 - look.gain_drift, look.offset_drift)):
            frame = np.clip(night * gain + offset + rng.normal(0, look.noise_sigma, night.shape), 0, 255).astype(np.uint8)
            d = detector.detect([cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)])[0]
            clean &= not np.isin(d.data["class_name"], ["garbage", "overflow"]).any()
        if clean:
            return night
    raise RuntimeError("bench: every candidate background already shows garbage to the model")


def _detected(detector, scene: np.ndarray, box) -> bool:
    d = detector.detect([cv2.cvtColor(scene, cv2.COLOR_GRAY2BGR)])[0]
    keep = np.isin(d.data["class_name"], ["garbage", "overflow"]) & (d.confidence >= 0.45)
    return bool(keep.any() and box_iou(np.array([box], float), d.xyxy[keep]).max() >= 0.4)


def dwell_s(minutes: float) -> int:
    """The garbage rule's dwell: 180 s on the 30-minute recording, shorter in proportion on a shorter one (so
    its piles still become violations)."""
    return max(12, round(GARBAGE_DWELL_S * min(1.0, minutes / 30)))


def build_night_input(minutes: float, detector, log=print, model: str | None = None) -> NightInput:
    """The static night street recording and its camera config, built once per length and cached."""
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    seconds = minutes * 60.0
    video = BENCH_DIR / f"cam-night_{int(minutes)}min" / "cam-night" / "night_20261120_230000.mp4"
    meta_path = BENCH_DIR / f"cam-night_{int(minutes)}min.json"  # beside the footage folder, which holds camera folders only
    config = BENCH_DIR / f"bench-cameras-{int(minutes)}min.yaml"
    config.write_text(CONFIG.format(dwell=dwell_s(minutes), busy_dwell=BUSY_DWELL_S), encoding="utf-8")
    if video.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        return NightInput(video, config, meta["planted"], meta["decoys"], meta["seconds"])
    from ..detect import DetectorSettings, load_detector

    background = _street(load_detector(model, backend="onnx", settings=DetectorSettings(conf=0.1)), LOOK)
    crops = iter(_crops())
    planted: list[Planted] = []
    for k, ((a, v), at) in enumerate(EVENTS):
        for crop in crops:  # the first real pile the model finds once it stands in this night street
            patch = night_gray(crop, gain=0.6, offset=14)
            scale = 230 / patch.shape[0]
            patch = cv2.resize(patch, (min(420, round(patch.shape[1] * scale)), 230), interpolation=cv2.INTER_AREA)
            p = Planted(f"pile{k}", patch, at, a * seconds, min(v, 1.5) * seconds)
            if _detected(detector, write_frame(background, [p]), p.box):
                planted.append(p)
                break
        else:
            raise RuntimeError("bench: ran out of garbage crops the model finds at night")
    log(f"bench: encoding {minutes:g} min of 1080p night street to {video} (once; cached)")
    t0 = time.perf_counter()
    write_night_clip(video, background, planted, seconds, fps=25, gop=50, look=LOOK,
                     bitrate=3_000_000, preset="ultrafast", progress=lambda i, n: log(f"  {i / n:.0%}") if i % (25 * 600) == 0 else None)
    log(f"bench: encoded in {time.perf_counter() - t0:.0f} s")

    def row(p: Planted) -> dict:
        return {"name": p.name, "box": list(p.box), "appear_s": p.appear_s, "vanish_s": p.vanish_s}

    meta = {"seconds": seconds, "planted": [row(p) for k, p in enumerate(planted) if k != DECOY], "decoys": [row(planted[DECOY])]}
    meta_path.write_text(json.dumps(meta, indent=1))
    return NightInput(video, config, meta["planted"], meta["decoys"], seconds)


def build_busy_input(minutes: float, detector, log=print) -> NightInput:
    """The busy 1080p day street (`busyclip`): traffic through the watched zone at every sample, real garbage
    piles on the pavement (each one the detector finds there, with the traffic passing), built once and cached.
    Its camera is `cam-busy` in the bench's camera config (written by `build_night_input`)."""
    from .busyclip import compose_busy, traffic, vehicle_crops, write_busy_clip

    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    seconds = minutes * 60.0
    video = BENCH_DIR / f"cam-busy_{int(minutes)}min" / "cam-busy" / "busy_20261121_080000.mp4"
    meta_path = BENCH_DIR / f"cam-busy_{int(minutes)}min.json"
    config = BENCH_DIR / "bench-cameras-busy.yaml"  # cam-busy's zone carries its own dwell time
    config.write_text(CONFIG.format(dwell=GARBAGE_DWELL_S, busy_dwell=BUSY_DWELL_S), encoding="utf-8")
    if video.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        return NightInput(video, config, meta["planted"], meta["decoys"], meta["seconds"])
    movers = traffic(vehicle_crops(SHARED_DATA / "streets-in"), seconds, W, BUSY_LANES)
    background = _busy_street(detector, movers)
    crops = iter(_crops())
    planted: list[Planted] = []
    for k, ((a, v), at) in enumerate(BUSY_EVENTS):
        for crop in crops:  # the first real pile the model finds on this street, with the traffic beside it
            scale = 230 / crop.shape[0]
            patch = cv2.resize(crop, (min(420, round(crop.shape[1] * scale)), 230), interpolation=cv2.INTER_AREA)
            p = Planted(f"pile{k}", patch, at, a * seconds, min(v, 1.5) * seconds)
            if all(_detected_bgr(detector, compose_busy(background, [p], movers, t), p.box) for t in (p.appear_s, (p.appear_s + min(p.vanish_s, seconds)) / 2)):
                planted.append(p)
                break
        else:
            raise RuntimeError("bench: ran out of garbage crops the model finds on the busy street")
    log(f"bench: encoding {minutes:g} min of a busy 1080p street to {video} (once; cached)")
    t0 = time.perf_counter()
    write_busy_clip(video, background, planted, movers, seconds, progress=lambda i, n: log(f"  {i / n:.0%}"))
    log(f"bench: encoded in {time.perf_counter() - t0:.0f} s")

    def row(p: Planted) -> dict:
        return {"name": p.name, "box": list(p.box), "appear_s": p.appear_s, "vanish_s": p.vanish_s}

    meta = {"seconds": seconds, "planted": [row(p) for k, p in enumerate(planted) if k != BUSY_DECOY], "decoys": [row(planted[BUSY_DECOY])]}
    meta_path.write_text(json.dumps(meta, indent=1))
    return NightInput(video, config, meta["planted"], meta["decoys"], seconds)


def _busy_street(detector, movers) -> np.ndarray:
    """A real street in which the model sees no garbage, with or without the traffic on it, as a 1080p picture."""
    from .busyclip import compose_busy

    for name in BUSY_BACKGROUNDS:
        street = as_camera_frame(load_image(SHARED_DATA / "streets-in" / "images" / name), W, H)
        frames = [street] + [compose_busy(street, [], movers, t) for t in (3.0, 17.0, 41.0, 66.0)]
        if not any(np.isin(d.data["class_name"], ["garbage", "overflow"]).any() for d in detector.detect(frames)):
            return street
    raise RuntimeError("bench: every candidate street already shows garbage to the model")


def _detected_bgr(detector, scene: np.ndarray, box) -> bool:
    d = detector.detect([scene])[0]
    keep = np.isin(d.data["class_name"], ["garbage", "overflow"]) & (d.confidence >= 0.45)
    return bool(keep.any() and box_iou(np.array([box], float), d.xyxy[keep]).max() >= 0.4)


def write_frame(background: np.ndarray, planted: list[Planted]) -> np.ndarray:
    from .nightclip import compose

    return compose(background, planted)


class _Recorder:
    """Every incident report the job posts, last state per incident (wraps the ledger's posting)."""

    def __init__(self, store) -> None:
        self.final: dict = {}
        one, many = store.post_incident, store.post_incidents

        def post_one(report, **kw):
            self.final[report.incident_id] = report
            return one(report, **kw)

        def post_many(reports, **kw):
            for r in reports:
                self.final[r.incident_id] = r
            return many(reports, **kw)

        store.post_incident, store.post_incidents = post_one, post_many


def run_job(footage: Path, config: Path, detector, gate: bool = True, strategy: str | None = None, streams: int | str = "auto") -> tuple[float, dict, list]:
    """The night job on `footage` with a fresh SQLite ledger (one worker: the bench times decoding and
    detection, not the cores); seconds, summary and incident reports. `streams`: the worker's detector streams
    (`NightSettings.streams`; `detector` was loaded with the threads each should have)."""
    from ..cases import AutoVerifier, CaseStore, LedgerConfig
    from ..config import load_config
    from ..engine import Engine
    from ..live.intake import Intake
    from ..night.units import NightSettings

    with tempfile.TemporaryDirectory(prefix="streetorder-bench-") as work:
        work = Path(work)
        store = CaseStore.open(LedgerConfig(database_url=f"sqlite:///{work / 'ledger.db'}", evidence_dir=work / "evidence"))
        try:
            rec = _Recorder(store)
            t0 = time.perf_counter()
            if strategy is None:
                from ..night.job import run_batch

                settings = NightSettings(every_s=EVERY_S, gate=gate, streams=streams, threads=getattr(getattr(detector, "primary", detector), "threads", None))
                summary = run_batch(store, load_config(config), footage, settings, workers=1, fresh=True, progress=False, detector=detector).as_dict()
            else:
                intake = Intake(Engine(config, detector, evidence_dir=work / "ev"), store, AutoVerifier(store), pool=None)
                summary = _today(intake, detector, footage, strategy)
            seconds = time.perf_counter() - t0
        finally:
            store.close()
    return seconds, summary, list(rec.final.values())


def _today(intake, detector, footage: Path, strategy: str) -> dict:
    """The job's per-video loop as it was: every sample detected, the file decoded by `strategy`."""
    from ..source.frames import video_start
    from ..source.sampling import GATE_OFF, sample_video

    config = intake.engine.config
    frames = 0
    for cam_dir in sorted(p for p in footage.iterdir() if p.is_dir()):
        camera = config.camera(cam_dir.name)
        for video in sorted(cam_dir.iterdir()):
            for frame, dets in sample_video(video, video_start(video, ZoneInfo(camera.timezone)), camera, detector, EVERY_S, GATE_OFF, strategy=strategy):
                intake.frame(frame, dets)
                frames += 1
    intake.flush()
    return {"frames": frames}


@contextlib.contextmanager
def _stdout_to_stderr():
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def naive(video: Path, model_onnx: Path, imgsz: int, stride: int) -> tuple[float, int]:
    """ultralytics' own video loop over the same model, one frame in `stride` (50 at 25 fps: every 2 s), as a
    user would write it. Its model is loaded (ultralytics opens the ONNX session on the first predict) before the
    clock starts, as the job's detector is."""
    from ..detect.ultralytics import import_yolo

    YOLO = import_yolo()  # noqa: N806  (its log on stderr: keeps --json clean)
    with _stdout_to_stderr():  # ultralytics logs its model loading to stdout when imported before (its handler holds the stream)
        model = YOLO(str(model_onnx), task="detect")
        model.predict(np.zeros((H, W, 3), np.uint8), imgsz=imgsz, conf=0.25, verbose=False, device="cpu")
        t0 = time.perf_counter()
        n = 0
        for _ in model.predict(source=str(video), vid_stride=stride, stream=True, imgsz=imgsz, conf=0.25, verbose=False, device="cpu"):
            n += 1
        return time.perf_counter() - t0, n


def score(reports: list, planted: list[dict], start, tolerance_s: float = 30.0) -> dict:
    """Planted violations found (same place, first seen within `tolerance_s` of the pile's arrival) and the
    incidents that match none."""
    found, errors, extra = set(), [], []
    for r in reports:
        secs = (r.first_seen - start).total_seconds()
        hit = None
        for k, p in enumerate(planted):
            if r.type == "garbage" and r.box and box_iou(np.array([p["box"]], float), np.array([r.box], float))[0, 0] >= 0.3 and abs(secs - p["appear_s"]) <= tolerance_s:
                hit = k
        if hit is None:
            extra.append({"type": r.type, "zone": r.zone_id, "first_seen_s": round(secs, 1), "box": r.box})
        else:
            found.add(hit)
            errors.append(abs(secs - planted[hit]["appear_s"]))
    return {"planted": len(planted), "found": len(found), "extra_incidents": len(extra), "extra": extra[:5],
            "first_seen_error_s_max": round(max(errors), 2) if errors else None}


def gate_stats(video: Path, config_path: Path, camera_id: str) -> dict:
    """Ticks decoded and detected by the gated job on `video` (the gate never looks at detections, so a detector
    that finds nothing gives the same counts, for the price of the decoding alone)."""
    from ..config import load_config
    from ..detect import empty_detections
    from ..source.frames import video_start
    from ..source.sampling import SampleStats, sample_video

    class Nothing:
        names = ("garbage",)

        def detect(self, images):
            return [empty_detections() for _ in images]

    config = load_config(config_path)
    camera = config.camera(camera_id)
    stats = SampleStats()
    for _ in sample_video(video, video_start(video, ZoneInfo(camera.timezone)), camera, Nothing(), EVERY_S, rules=config.rules, stats=stats):
        pass
    return {"strategy": stats.strategy, "ticks": stats.ticks, "decoded": stats.decoded, "detected": stats.detected, "bisections": stats.bisections}


INPUTS = ("night_street_1080p", "busy_street_1080p", "vtest")


def run(minutes: float = 30.0, model: str | None = None, today: bool = False, log=print, busy_minutes: float = 5.0, only: tuple[str, ...] = INPUTS) -> dict:
    """Every input of `only` (all by default) through the job and the naive loop; the static scene's cost with
    the night street."""
    unknown = set(only) - set(INPUTS)
    if unknown:
        raise ValueError(f"unknown bench input(s) {', '.join(sorted(unknown))} (known: {', '.join(INPUTS)})")
    from ..config.settings import PipelineSettings
    from ..detect import DetectorSettings
    from ..detect.streams import available_cores, choose_parallelism
    from ..detect.registry import resolve_model
    from ..detect.cascade import load_cue_cascade
    from ..source.frames import video_start

    from .. import evidence  # noqa: F401  (imported before any timing: the job's own imports are not its work)
    from ..night import job  # noqa: F401
    from ..source import sampling  # noqa: F401
    from ..cases import store, verify  # noqa: F401

    _warm_imports()

    ref = resolve_model(model)
    cores = available_cores()
    par = choose_parallelism(PipelineSettings().night_streams, cores, favor="throughput")  # as `run_batch` chooses for one worker
    log(f"bench: the job's detector: {par.why}")
    detector = load_cue_cascade(model, settings=DetectorSettings(conf=0.25), threads=par.threads)  # onnxruntime, as the naive loop
    served = load_cue_cascade(model, backend="auto", settings=DetectorSettings(conf=0.25), threads=par.threads)  # what `streetorder run` serves
    # for the busy inputs: the detector in the decoding thread on every core (the job before it had streams), one
    # stream of its own on every core, one single-threaded stream per core
    ways = {f"0x{cores}": (0, cores), f"1x{cores}": (1, cores), f"{cores}x1": (cores, 1)} if cores > 1 else {}
    detectors = {t: detector if t == par.threads else load_cue_cascade(model, settings=DetectorSettings(conf=0.25), threads=t) for _, t in ways.values()}
    imgsz = getattr(getattr(detector, "primary", detector), "imgsz", 416)
    night = build_night_input(minutes, detector, log, model) if "night_street_1080p" in only else None
    busy = build_busy_input(busy_minutes, detector, log) if "busy_street_1080p" in only else None
    if night is None:  # vtest's camera is in the bench's camera config, which the busy street's build writes too
        night = busy or build_busy_input(busy_minutes, detector, log)
    vtest_dir = BENCH_DIR / "vtest" / "cam-vtest"
    vtest_dir.mkdir(parents=True, exist_ok=True)
    vtest = vtest_dir / "vtest_20261120_220000.avi"
    if not vtest.exists():
        vtest.symlink_to(VTEST)
    out: dict = {"model": ref.name, "imgsz": imgsz, "cpu": _cpu(), "parallelism": {"streams": par.streams, "threads": par.threads, "why": par.why}, "inputs": {}}
    inputs = (
        ("night_street_1080p", night, night.video, "cam-night", False),
        *((("busy_street_1080p", busy, busy.video, "cam-busy", True),) if busy is not None else ()),  # None: not asked for
        ("vtest", night, vtest, "cam-vtest", True),
    )
    for name, source, video, camera, busy_scene in [i for i in inputs if i[0] in only]:
        seconds_of_video, fps = _duration(video)
        stride = max(1, round(fps * EVERY_S))  # the job's sampling: 50 frames at 25 fps, 20 in vtest's 10 fps
        blank = np.zeros((*_frame_size(video)[::-1], 3), np.uint8)
        for d in {id(x): x for x in (detector, served, *detectors.values())}.values():
            d.detect([blank])  # this input's shape seen before the clock (OpenVINO compiles a model per input shape), as the naive loop's model is warmed
        # each job JOB_RUNS times, like for like and as shipped in turn: a 1.5 s job moves by a quarter from run to
        # run on a shared 2-core machine, where the naive loop's minute averages its noise out
        job_runs: list[float] = []
        served_runs: list[float] = []
        for k in range(JOB_RUNS):
            log(f"bench: {name}: the night job ({k + 1} of {JOB_RUNS})")
            t, summary, reports = run_job(video.parent.parent, source.config, detector, streams=par.streams)
            job_runs.append(t)
            log(f"bench: {name}: the night job as shipped (backend auto: {served.backend}; {k + 1} of {JOB_RUNS})")
            t, _, served_reports = run_job(video.parent.parent, source.config, served, streams=par.streams)
            served_runs.append(t)
        t_job, t_served = float(np.median(job_runs)), float(np.median(served_runs))
        log(f"bench: {name}: naive ultralytics predict(vid_stride=50)")
        try:
            t_naive, n_naive = naive(video, ref.onnx, imgsz, stride)
        except ImportError as e:
            t_naive, n_naive = None, f"skipped: {e}"
        start = video_start(video, ZoneInfo("Asia/Shanghai"))
        row = {
            "video_seconds": round(seconds_of_video, 1),
            "job_seconds": round(t_job, 2),  # the median of the runs
            "job_seconds_runs": [round(t, 2) for t in job_runs],
            "video_seconds_per_second": round(seconds_of_video / t_job, 1),
            "naive_seconds": round(t_naive, 2) if t_naive else None,
            "naive_video_seconds_per_second": round(seconds_of_video / t_naive, 1) if t_naive else None,
            "naive_vid_stride": stride,
            "naive_frames": n_naive,
            "speedup_vs_naive": round(t_naive / t_job, 2) if t_naive else None,
            # the job with the detector `auto` serves (a gated bf16/INT8 variant where this CPU runs one faster):
            # the product against the naive loop, where the row above compares the same runtime on both sides
            "served_backend": served.backend,
            "served_job_seconds": round(t_served, 2),
            "served_job_seconds_runs": [round(t, 2) for t in served_runs],
            "served_speedup_vs_naive": round(t_naive / t_served, 2) if t_naive else None,
            **{f"served_{k}": v for k, v in score(served_reports, source.planted if camera != "cam-vtest" else [], start).items() if k in ("found", "extra_incidents")},
            "job_frames": summary["frames"],
            **score(reports, source.planted if camera != "cam-vtest" else [], start),
            "decoys": len(source.decoys) if camera != "cam-vtest" else 0,
            "gate": gate_stats(video, source.config, camera),
        }
        if busy_scene and ways:  # streams against threads, interleaved, each way twice
            times: dict[str, list[float]] = {k: [] for k in ways}
            for _ in range(2):
                for k, (streams, threads) in ways.items():
                    log(f"bench: {name}: the night job with {streams} stream(s) x {threads} thread(s)")
                    times[k].append(round(run_job(video.parent.parent, source.config, detectors[threads], streams=streams)[0], 2))
            row["streams_x_threads_seconds"] = times
            row["streams_x_threads_median"] = {k: round(float(np.median(v)), 2) for k, v in times.items()}
        if today:
            log(f"bench: {name}: the job as it was (decode every frame, detect every sample)")
            t_today, _, today_reports = run_job(video.parent.parent, source.config, detector, strategy="decode")
            row["today_seconds"] = round(t_today, 2)
            row["today_video_seconds_per_second"] = round(seconds_of_video / t_today, 1)
            row["today_vs_naive"] = round(t_naive / t_today, 2) if t_naive else None
            row["today_found"] = score(today_reports, source.planted if camera != "cam-vtest" else [], start)["found"]
        out["inputs"][name] = row
    if "night_street_1080p" in only:
        out["static_scene"] = static_cost(night, detector, log)
    out["load_at_end"] = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    return out


def static_cost(night: NightInput, detector, log=print, repeats: int = 2) -> dict:
    """What the static scene (what is new and stays put) costs on the static night: the night camera with its
    street also a no_vending zone (so the cue model runs in both), static objects on against off, interleaved
    `repeats` times; the cost is the ratio of the medians, minus one."""
    text = night.config.read_text(encoding="utf-8")
    zone = "      - {id: street, kind: garbage_watch, polygon: [[0, 560], [1920, 560], [1920, 1080], [0, 1080]]}\n"
    if zone not in text:
        raise RuntimeError("bench: the night camera's zone is not where static_cost expects it")
    variants = {}
    for name, enabled in (("off", "false"), ("on", "true")):
        path = night.config.with_name(f"{night.config.stem}-static-{name}.yaml")
        vending = zone.replace("id: street, kind: garbage_watch", "id: pavement, kind: no_vending")
        path.write_text(text.replace(zone, zone + vending + f"    static: {{enabled: {enabled}}}\n"), encoding="utf-8")
        variants[name] = path
    times: dict[str, list[float]] = {"off": [], "on": []}
    found: dict[str, dict[str, int]] = {}
    for _ in range(repeats):
        for name, path in variants.items():
            log(f"bench: night_street_1080p: static objects {name}")
            seconds, summary, reports = run_job(night.video.parent.parent, path, detector)
            times[name].append(round(seconds, 2))
            found[name] = {t: sum(r.type == t for r in reports) for t in sorted({r.type for r in reports})}
    off, on = float(np.median(times["off"])), float(np.median(times["on"]))
    return {"off_seconds": times["off"], "on_seconds": times["on"], "cost": round(on / off - 1.0, 3), "incidents": found}


def _warm_imports() -> None:
    """What the job imports on first use (PyAV, the ledger's SQLAlchemy and Alembic, the process pool), loaded
    before any timing, as the naive baseline's model is loaded before its clock starts: a night's process pays
    them once, not once per file (they were 0.8 s of the first 30-minute file's 5.3 s)."""
    import multiprocessing.pool  # noqa: F401

    import av  # noqa: F401

    from ..cases import CaseStore, LedgerConfig

    with tempfile.TemporaryDirectory(prefix="streetorder-bench-") as work:
        CaseStore.open(LedgerConfig(database_url=f"sqlite:///{Path(work) / 'ledger.db'}", evidence_dir=Path(work) / "evidence")).close()


def _duration(video: Path) -> tuple[float, float]:
    from ..source.decode import probe

    p = probe(video)
    return p.frames / p.fps, p.fps


def _frame_size(video: Path) -> tuple[int, int]:
    from ..source.decode import probe

    p = probe(video)
    return p.width, p.height


def _cpu() -> str:
    import os
    import platform

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    return f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, load {load:.1f} at start"

"""`streetorder scenarios|bench`: the developers' tools. Heavy imports stay inside each command.

`bench serve` drives the live service, which is `service/`'s to run (`service.bench`): the command line hands its
command in (`register(..., bench_serve=...)`), so nothing here imports `service/`."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable
from pathlib import Path

from ..cli_options import add_backend_arg
from ..paths import SHARED_DATA


def cmd_scenarios(args: argparse.Namespace) -> int:
    from ..detect import DetectorSettings
    from ..detect.cascade import load_cue_cascade
    from .scenarios import SHIPPED, load_scenarios, run_scenario, summarize

    detector = load_cue_cascade(args.model, backend=args.backend, settings=DetectorSettings(conf=args.conf), threads=args.threads)
    dropouts = [float(d) for d in args.dropout.split(",")]
    scenarios = load_scenarios(Path(args.folder) if args.folder else SHIPPED)
    if args.only:
        scenarios = [s for s in scenarios if s.name in args.only.split(",")]
    results = [r for s in scenarios for r in run_scenario(s, detector, Path(args.data_root), dropouts=tuple(dropouts), seed=args.seed, gate=args.gate)]
    summary = summarize(results)
    if args.json:
        print(json.dumps(summary, indent=2, ensure_ascii=False, default=str))
    else:
        for r in results:
            print(f"{r.name:<24} dropout {r.dropout:.0%}: expected {r.expected}, produced {r.produced}, matched {r.matched}, duplicates {r.duplicates}, false {r.false}")
        print(f"recall {summary['recall']:.3f}  precision {summary['precision']:.3f}  duplicate rate {summary['duplicate_rate']:.3f}")
    return 0 if summary["recall"] == 1.0 and summary["precision"] == 1.0 else 1


def cmd_bench_state(args: argparse.Namespace) -> int:
    from ..detect.cascade import load_cue_cascade
    from .camera_state import measure
    from .scenarios import SHIPPED, load_scenarios

    scenarios = load_scenarios(SHIPPED)
    if args.only:
        scenarios = [s for s in scenarios if s.name in args.only.split(",")]
    out = measure(scenarios, load_cue_cascade(args.model), Path(args.data_root), args.every_s, args.db)
    if args.json:
        print(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        for s in out["scenarios"]:
            print(f"{s['name']:<24} {s['frames']:>4} frames {s['checkpoints']:>4} checkpoints  {s['bytes_median']:>7} B median {s['bytes_max']:>7} B max  "
                  f"{s['ms_per_frame_with']:.2f} vs {s['ms_per_frame_without']:.2f} ms/frame")
        print(f"every {out['every_s']:g} s: {out['checkpoints']} checkpoints of {out['frames']} frames, {out['bytes_median']} B median, {out['bytes_max']} B max, "
              f"{out['ms_per_frame_checkpoint']:+.2f} ms/frame ({out['ms_per_frame_with']:.2f} vs {out['ms_per_frame_without']:.2f})")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .backends import run_all

    print(json.dumps(run_all(args.model, backend=args.backend, images=args.images, data=Path(args.data), backends_only=args.backends_only, rounds=args.rounds), indent=2))
    return 0


def cmd_bench_batch(args: argparse.Namespace) -> int:
    from .batch import INPUTS, run

    only = tuple(args.only.split(",")) if args.only else INPUTS
    out = run(minutes=args.minutes, busy_minutes=args.busy_minutes, model=args.model, today=args.today, only=only, log=(lambda m: print(m, file=sys.stderr)) if args.json else print)
    if args.json:
        print(json.dumps(out, indent=2, ensure_ascii=False, default=str))
        return 0
    for name, r in out["inputs"].items():
        print(f"{name}: {r['video_seconds']:.0f} s of video in {r['job_seconds']} s = {r['video_seconds_per_second']}x real time; naive {r['naive_video_seconds_per_second']}x; "
              f"speedup_vs_naive {r['speedup_vs_naive']}; planted {r['planted']}, found {r['found']}, extra incidents {r['extra_incidents']}; gate {r['gate']}")
        if "streams_x_threads_median" in r:
            print(f"  detector streams x threads (seconds, median of 2): {r['streams_x_threads_median']}")
        if "today_seconds" in r:
            print(f"  the job before (decode all, detect every sample): {r['today_video_seconds_per_second']}x real time, {r['today_vs_naive']} of naive speed")
    st = out.get("static_scene")
    if st:
        print(f"static objects on the night street (as a no_vending zone): on {st['on_seconds']} s vs off {st['off_seconds']} s: cost {st['cost']:+.1%}")
    print(f"the job's detector: {out['parallelism']['why']}")
    print(out["cpu"])
    return 0


def cmd_bench_learning_curve(args: argparse.Namespace) -> int:
    from importlib.util import find_spec

    if find_spec("ultralytics") is None:
        print("error: `bench learning-curve` trains models and needs the train extra: pip install -e '.[train]'", file=sys.stderr)
        return 2
    from ..train.learning_curve import CurveConfig, run_curve

    cfg = CurveConfig(
        budgets=tuple(int(b) for b in args.budgets.split(",")), epochs=args.epochs, imgsz=args.imgsz, val_images=args.val_images,
        seed=args.seed, workdir=Path(args.workdir),
    )
    with contextlib.redirect_stdout(sys.stderr):  # ultralytics' progress goes to stdout; the table or JSON own it
        result = run_curve(cfg, log=print).to_dict()
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    if args.card:
        from ..train.card import add_to_card
        from ..train.learning_curve import card_entry

        add_to_card(Path(args.card), "labelling_budget", card_entry(result, " ".join(["streetorder", *sys.argv[1:]])))
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"'{result['class_name']}' as a new class on {result['base']}, {result['imgsz']} px, seed {result['seed']}; scored on {result['val_images']} garbage-cn val images ({result['val_boxes']} boxes)")
    print(f"{'budget':>6} {'background':>10} {'boxes':>6} {'epochs':>6} {'train s':>8} {'AP50':>6} {'AP50-95':>7}")
    for b in result["budgets"]:
        print(f"{b['budget']:>6} {b['background_images']:>10} {b['labelled_boxes']:>6} {b['epochs']:>6} {b['train_seconds']:>8} {b['ap50']!s:>6} {b['ap50_95']!s:>7}")
    return 0


def register(sub: argparse._SubParsersAction, *, bench_serve: Callable[[argparse.Namespace], int], bench_streams: Callable[[argparse.Namespace], int]) -> None:
    """Add the developers' commands to the `streetorder` sub-command parser; `bench_serve` runs `bench serve`,
    `bench_streams` `bench streams`."""
    p = sub.add_parser("scenarios", help="run the shipped engine scenarios and score incidents", description="Compose the shipped scenarios from real images, run the detector and the engine, and report incident-level recall, precision and duplicate rate (with and without detection dropout). Exit status 1 unless recall and precision are both 1.")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--model", help="model (default: models/CURRENT)")
    p.add_argument("--conf", type=float, default=0.25, help="detector score threshold (default 0.25)")
    p.add_argument("--threads", type=int, help="inference threads")
    add_backend_arg(p)
    p.add_argument("--dropout", default="0,0.3", help="comma-separated shares of frames whose detections are dropped (default 0,0.3)")
    p.add_argument("--seed", type=int, default=0, help="dropout random seed")
    p.add_argument("--only", help="comma-separated scenario names")
    p.add_argument("--gate", action="store_true", help="feed the frames through the night job's change gate (as `streetorder run` does)")
    p.add_argument("--folder", help="scenario folder (default datasets/scenarios)")
    p.add_argument("--data-root", default=str(SHARED_DATA), help="where scenario images are read from (default ../shared/data)")
    p.set_defaults(func=cmd_scenarios)

    p = sub.add_parser("bench", help="serving-path benchmarks (prints its figures as JSON)", description="Every available backend and variant (onnx, openvino, openvino-bf16, openvino-int8, openvino-int8-bf16, ultralytics if installed) side by side on real images, one image at a time in round-robin, at the model's size: median ms per image, the ratio to onnx and the speed-up over ultralytics torch; a vending/parking camera's frame (street + cue model) before (f32 OpenVINO) and with auto. Then, with --backend: detector latency and throughput (batch 1 vs 8, 1 thread vs all cores, measured interleaved in one run) and the engine's share of frame time and peak Python memory on the sample lane clip.")
    p.add_argument("--model", help="model (default: models/CURRENT)")
    add_backend_arg(p)
    p.add_argument("--images", type=int, default=30, help="real images for the backend comparison (default 30)")
    p.add_argument("--data", default=str(SHARED_DATA / "garbage-cn" / "val" / "images"), help="folder of images for the backend comparison (default ../shared/data/garbage-cn/val/images)")
    p.add_argument("--rounds", type=int, default=2, help="passes over the images in the backend comparison (default 2)")
    p.add_argument("--backends-only", action="store_true", help="only the backend and variant comparison and the vending/parking camera frame (street + cue model), before and with auto")
    p.set_defaults(func=cmd_bench)
    what = p.add_subparsers(dest="bench_what", metavar="{batch,serve,state,streams,learning-curve}", required=False)  # plain `bench`: the backend comparison
    q = what.add_parser(
        "serve", help="the live endpoint under load vs the detector alone",
        description="Start `streetorder serve` (real uvicorn on 127.0.0.1), POST /detect real images at concurrency 1, 4 and 16, and time the "
        "service's own detector in the same run (single image and batches of 1-16, in turn with the load phases). Prints p50/p95/p99 and "
        "images/s, c16_vs_best_batched (target >= 0.9) and c1_p99_vs_single (target <= 1.3).",
    )
    q.add_argument("--json", action="store_true", help="print one JSON object")
    q.add_argument("--model", help="model (default: models/CURRENT)")
    q.add_argument("--images", type=int, default=32, help="real images to send (default 32)")
    q.add_argument("--rounds", type=int, default=2, help="detector and load phases in turn, this many times (default 2)")
    q.add_argument("--no-batching", action="store_true", help="serve without micro-batching (each request runs the detector alone), for comparison")
    q.add_argument("--streams", help="the service's detector streams (STREETORDER_INFERENCE_STREAMS: auto or a number); the bench's own detector gets the same threads per stream")
    q.add_argument("--first-frames", action="store_true", help="instead: start the service with the warm-up off and on (STREETORDER_WARM_UP_S) on cameras of common resolutions; prints /ready after the start and each camera's first and second POST /frames")
    q.add_argument("--burst", type=int, metavar="N", help="instead: bursts of N concurrent POST /detect (fresh connections), with /health and a reviewer's GET /cases probed meanwhile; prints the 503s, their latency and the accepted p50/p99 (issue 22's targets use 96)")
    q.add_argument("--data", default=str(SHARED_DATA / "garbage-cn" / "val" / "images"), help="folder of images (default ../shared/data/garbage-cn/val/images)")
    q.add_argument("--ray", metavar="ADDRESS", help="instead: `serve --ray` on this Ray cluster (`local`: one started here) with 1 and 2 detector replicas (--replicas), "
                   "against the one-process service in the same run: POST /detect at concurrency 16 and POST /frames from --cameras cameras; prints what a "
                   "500-camera district would need (docs/benchmarks.md)")
    q.add_argument("--replicas", default="1,2", help="with --ray: replica counts to measure, comma-separated (default 1,2)")
    q.add_argument("--cameras", type=int, default=16, help="with --ray: cameras posting frames at once, each its frames in order (default 16)")
    q.add_argument("--db", help="with --ray: a PostgreSQL server URL (default $STREETORDER_DB); the bench makes a database of its own there and drops it after")
    q.set_defaults(func=bench_serve)
    q = what.add_parser(
        "streams", help="RTSP decode cost (key frames vs every frame) and how many streamed cameras `streetorder serve` sustains at every 2 s",
        description="Encode once (cached under var/bench/) vtest.avi as a 1080p 25 fps H.264 stream with a key frame every 2 s, play it from "
        "GStreamer's local RTSP server (Debian: python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good), "
        "and measure: the CPU per sample of N readers decoding key frames only and every frame; then `streetorder serve` with N streamed "
        "cameras (every 2 s): samples processed and shed per second, and whether N is sustained. Prints the load average with every figure.",
    )
    q.add_argument("--json", action="store_true", help="print one JSON object")
    q.add_argument("--model", help="model (default: models/CURRENT)")
    q.add_argument("--readers", default="1,4", help="comma-separated reader counts for the decode cost (default 1,4)")
    q.add_argument("--cameras", default="8,16,32", help="comma-separated streamed camera counts for the service (default 8,16,32)")
    q.add_argument("--seconds", type=float, default=20.0, help="measuring window per decode phase; the service's is 1.5 times it (default 20)")
    q.set_defaults(func=bench_streams)
    q = what.add_parser(
        "batch", help="the night job vs ultralytics' own video loop, on a generated 1080p night street, a generated busy 1080p street and vtest.avi",
        description="Build (once, cached under var/bench/) a 1080p 25 fps H.264 (GOP 50) recording of a static night street with real garbage piles "
        "appearing and disappearing, and one of a busy day street (real vehicles passing through the watched zone all the time, real garbage piles on "
        "the pavement), and take ../shared/data/video/vtest.avi; run each through the night job (decode only what is needed, change gate, "
        "detector, engine, a fresh SQLite ledger) and through ultralytics YOLO(model).predict(source=video, vid_stride=50, stream=True) with the same "
        "model, in one run (each job three times, in turn with the job as shipped: the median counts). Prints video_seconds_per_second, the same for the "
        "naive way, speedup_vs_naive, and planted / found / extra incidents; on "
        "the busy inputs also the job with its detector in the decoding thread on every core (0xN, as before streams), one stream of its own on every "
        "core (1xN) and one single-threaded stream per core (Nx1): streams_x_threads.",
    )
    q.add_argument("--json", action="store_true", help="print one JSON object (progress goes to stderr)")
    q.add_argument("--model", help="model (default: models/CURRENT)")
    q.add_argument("--minutes", type=float, default=30.0, help="length of the generated night recording (default 30; each length is cached)")
    q.add_argument("--only", metavar="NAMES", help="comma-separated inputs to run (night_street_1080p, busy_street_1080p, vtest; default all)")
    q.add_argument("--busy-minutes", type=float, default=5.0, help="length of the generated busy street (default 5; each length is cached)")
    q.add_argument("--today", action="store_true", help="also time the job as it was: every frame decoded, the detector on every sample")
    q.set_defaults(func=cmd_bench_batch)
    q = what.add_parser(
        "state", help="what checkpointing each camera's engine state costs: its size and ms per frame (the shipped scenarios)",
        description="Run the shipped scenarios' frames (real detections, detected once) through the live intake twice, interleaved: with each "
        "camera's engine state checkpointed into a fresh ledger every --every-s of frame time (and with every frame that posts reports), and "
        "without. Prints the checkpoints' size (median, max bytes) and the ms per frame with and without, per scenario and overall.",
    )
    q.add_argument("--json", action="store_true", help="print one JSON object")
    q.add_argument("--model", help="model (default: models/CURRENT)")
    q.add_argument("--every-s", type=float, default=10.0, help="checkpoint interval in frame seconds (default 10, the service's default)")
    q.add_argument("--db", help="ledger database URL to write to (default: a fresh SQLite file)")
    q.add_argument("--only", help="comma-separated scenario names")
    q.add_argument("--data-root", default=str(SHARED_DATA), help="where scenario images are read from (default ../shared/data)")
    q.set_defaults(func=cmd_bench_state)
    q = what.add_parser(
        "learning-curve", help="labels needed for a new class: AP of garbage-cn 'overflow' learnt as new, per labelling budget (train extra; slow)",
        description="Grow the COCO model's head by one class, 'overflow' (as `streetorder retrain` does for a class added in datasets/classes.yaml), "
        "fine-tune it on N labelled garbage-cn train images (one seeded pick, nested: each set holds the smaller ones) plus N/2 background streets for "
        "each budget N, with the same number of training steps for every budget, and score AP50 and AP50-95 of the class on garbage-cn val. "
        "Prints a table; the defaults took 47 minutes on the 2-core machine here, shared with other jobs.",
    )
    q.add_argument("--budgets", default="25,50,100,200", help="comma-separated labelled-image budgets (default 25,50,100,200)")
    q.add_argument("--epochs", type=int, default=15, help="epochs for the largest budget; smaller ones train as many steps (default 15)")
    q.add_argument("--imgsz", type=int, default=320, help="training and scoring size (default 320)")
    q.add_argument("--val-images", type=int, help="score on a seeded subset of this many garbage-cn val images (default: all 391)")
    q.add_argument("--seed", type=int, default=0, help="seed of the picks and of training (default 0)")
    q.add_argument("--workdir", default="var/learning-curve", help="work folder for the built sets and runs (default var/learning-curve)")
    q.add_argument("--json", action="store_true", help="print one JSON object (progress goes to stderr)")
    q.add_argument("--out", help="also write the JSON result to this file")
    q.add_argument("--card", metavar="MODEL_DIR", help="also store the curve in this model's card (card.json) and re-render its README, e.g. models/street-v2")
    q.set_defaults(func=cmd_bench_learning_curve)

"""The `streetorder` command: one sub-command per job. Heavy imports stay inside each command."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .paths import REPO, SAMPLE_CONFIG, SAMPLE_FOOTAGE, SHARED, SHARED_DATA


BACKEND_HELP = "auto (default): the faster of onnx and openvino that agrees with onnx on this machine; onnx (onnxruntime), openvino, or ultralytics (the .pt; needs the train extra)"


def _add_backend_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=["auto", "onnx", "openvino", "ultralytics"], default="auto", help=BACKEND_HELP)


def _add_detector_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="model name under models/, a model folder, or an .onnx/.pt file (default: models/CURRENT)")
    p.add_argument("--conf", type=float, default=0.25, help="minimum score (default 0.25)")
    p.add_argument("--iou", type=float, default=0.7, help="NMS IoU threshold (default 0.7)")
    p.add_argument("--imgsz", type=int, help="inference size in pixels (default: the model's own)")
    p.add_argument("--classes", help="comma-separated class names to keep, e.g. garbage,overflow")
    p.add_argument("--threads", type=int, help="inference threads (default: all cores)")


def _settings(args: argparse.Namespace):
    from .detect import DetectorSettings

    classes = tuple(c.strip() for c in args.classes.split(",") if c.strip()) if args.classes else None
    return DetectorSettings(conf=args.conf, iou=args.iou, imgsz=args.imgsz, classes=classes)


def _tiles_arg(text: str) -> tuple[int, int]:
    cols, sep, rows = text.lower().partition("x")
    if not sep or not cols.isdigit() or not rows.isdigit() or not (1 <= int(cols) <= 6 and 1 <= int(rows) <= 6) or (int(cols), int(rows)) == (1, 1):
        raise argparse.ArgumentTypeError(f"'{text}' is not a tile grid; use COLSxROWS, 1..6 each and at least 2 tiles, e.g. 2x2")
    return int(cols), int(rows)


def _overlap_arg(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not 0.0 <= v <= 0.5:
        raise argparse.ArgumentTypeError(f"overlap must be between 0 and 0.5 (a share of the tile), got {v}")
    return v


def _add_slice_args(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--tiles", type=_tiles_arg, default=(2, 2), metavar="COLSxROWS", help=f"{what}tile grid (default 2x2)")
    p.add_argument("--overlap", type=_overlap_arg, default=0.2, help=f"{what}share of a tile shared with its neighbour (default 0.2)")


def cmd_detect(args: argparse.Namespace) -> int:
    from .detect import detections_to_records, load_detector
    from .detect.cascade import load_cue_cascade
    from .detect.files import detect_files
    from .images import expand_paths

    detector = (load_detector if args.no_cue else load_cue_cascade)(args.model, backend=args.backend, settings=_settings(args), threads=args.threads)
    if args.slice:
        from .detect.slicing import SlicedDetector, SliceSettings

        detector = SlicedDetector(detector, SliceSettings(tiles=args.tiles, overlap=args.overlap))
    save = Path(args.save) if args.save else None
    if save:
        save.mkdir(parents=True, exist_ok=True)
    failed = 0
    used_names: set[str] = set()
    for r in detect_files(detector, expand_paths(args.paths), batch=args.batch, keep_images=save is not None):
        if not r.ok:
            failed += 1
            print(f"error: {r.error}", file=sys.stderr)
            if args.json:
                print(json.dumps({"path": str(r.path), "error": r.error}, ensure_ascii=False), flush=True)
            continue
        records = detections_to_records(r.detections)
        if args.json:
            print(json.dumps({"path": str(r.path), "detections": records}, ensure_ascii=False), flush=True)
        else:
            summary = ", ".join(f"{d['class_name']} {d['score']:.2f}" for d in records) or "nothing"
            print(f"{r.path}: {summary}")
        if save:
            import cv2

            from .draw import draw_detections

            name = f"{r.path.stem}.jpg"
            i = 1
            while name in used_names:
                name, i = f"{r.path.stem}_{i}.jpg", i + 1
            used_names.add(name)
            cv2.imwrite(str(save / name), draw_detections(r.image, r.detections))
    if failed:
        print(f"{failed} file(s) failed", file=sys.stderr)
    return 1 if failed else 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    if args.slice_study:
        return _evaluate_slicing(args)
    if args.cues:
        return _evaluate_cues(args)
    if not args.data:
        raise SystemExit("streetorder evaluate: --data is required (or --cues, or --slice-study)")
    from .train.evaluate import evaluate_model

    report = evaluate_model(args.data, args.model, split=args.split, backend=args.backend, imgsz=args.imgsz, night=args.night, threads=args.threads)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print(f"{report['model']} on {report['data']} ({report['split']}{', night' if args.night else ''}, {report['images']} images)")
        print(f"  mAP50 {report['map50']:.3f}  mAP50-95 {report['map50_95']:.3f}")
        for name, m in report["per_class"].items():
            print(f"  {name:<14} mAP50 {m['map50']:.3f}  mAP50-95 {m['map50_95']:.3f}  ({m['instances']} boxes)")
    return 0




def cmd_run(args: argparse.Namespace) -> int:
    import tempfile

    from .batch import run_batch
    from .cases import AutoVerifier, CaseStore, LedgerConfig
    from .detect import DetectorSettings
    from .detect.cascade import load_cue_cascade
    from .engine import Engine
    from .intake import Intake

    ledger = LedgerConfig.load(args.ledger, database_url=args.db)
    detector = load_cue_cascade(args.model, backend=args.backend, settings=DetectorSettings(conf=args.conf), threads=args.threads)
    store = CaseStore.open(ledger)
    try:
        with tempfile.TemporaryDirectory(prefix="streetorder-evidence-") as work:
            intake = Intake(Engine(args.config, detector, evidence_dir=Path(work)), store, AutoVerifier(store))
            summary = run_batch(intake, detector, Path(args.footage), every_s=args.every, batch=args.batch, progress=not args.json)
        report = summary.as_dict() | {"database": ledger.database_url, "evidence_dir": str(ledger.evidence_dir)}
        if args.deliver:
            from datetime import UTC, datetime

            from .cases.delivery import transports_for
            from .cases.outbox import OutboxWorker

            transports = transports_for(ledger)
            if not transports:
                raise ValueError("--deliver: no delivery channel configured (set webhook and/or mqtt in the ledger config)")
            stats = OutboxWorker(store.db, transports, ledger.outbox).deliver_pending(datetime.now(UTC))
            report["delivered"] = {"sent": stats.sent, "failed": stats.failed, "dead": stats.dead}
    finally:
        store.close()
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print(f"{report['files']} files, {report['frames']} frames, {report['photos']} patrol photos in {report['seconds']} s")
        print(f"incidents opened {report['incidents_opened']}, ended {report['incidents_ended']}; cases created {report['cases_created']}, updated {report['cases_updated']}, reopened {report['cases_reopened']}; auto-verified {report['auto_verified']}, escalated {report['escalated']}")
        print(f"ledger: {report['database']}  (see: streetorder cases list)")
        for f in report["failed"]:
            print(f"error: {f['path']}: {f['error']}", file=sys.stderr)
    return 1 if report["failed"] else 0


def cmd_scenarios(args: argparse.Namespace) -> int:
    from .detect import DetectorSettings
    from .detect.cascade import load_cue_cascade
    from .devtools.scenarios import SHIPPED, load_scenarios, run_scenario, summarize

    detector = load_cue_cascade(args.model, backend=args.backend, settings=DetectorSettings(conf=args.conf), threads=args.threads)
    dropouts = [float(d) for d in args.dropout.split(",")]
    scenarios = load_scenarios(Path(args.folder) if args.folder else SHIPPED)
    if args.only:
        scenarios = [s for s in scenarios if s.name in args.only.split(",")]
    results = [r for s in scenarios for r in run_scenario(s, detector, Path(args.data_root), dropouts=tuple(dropouts), seed=args.seed)]
    summary = summarize(results)
    if args.json:
        print(json.dumps(summary, indent=2, ensure_ascii=False, default=str))
    else:
        for r in results:
            print(f"{r.name:<24} dropout {r.dropout:.0%}: expected {r.expected}, produced {r.produced}, matched {r.matched}, duplicates {r.duplicates}, false {r.false}")
        print(f"recall {summary['recall']:.3f}  precision {summary['precision']:.3f}  duplicate rate {summary['duplicate_rate']:.3f}")
    return 0 if summary["recall"] == 1.0 and summary["precision"] == 1.0 else 1


def cmd_config(args: argparse.Namespace) -> int:
    from .config import StreetOrderConfig, load_config

    if args.action == "schema":
        print(json.dumps(StreetOrderConfig.model_json_schema(), indent=2, ensure_ascii=False))
        return 0
    config = load_config(args.file)
    for c in config.cameras:
        zones = ", ".join(f"{z.id} ({z.kind}{', scheduled' if z.schedule else ''})" for z in c.zones) or "no zones"
        print(f"{c.id}: {c.location.district} / {c.location.point}, {c.resolution[0]}x{c.resolution[1]}; {zones}; {len(c.fixtures)} fixture(s)")
    print(f"ok: {len(config.cameras)} camera(s)")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .devtools.bench import run_all

    print(json.dumps(run_all(args.model, backend=args.backend, images=args.images, data=Path(args.data)), indent=2))
    return 0


def cmd_samples(args: argparse.Namespace) -> int:
    from .cases import CaseStore, LedgerConfig
    from .detect import DetectorSettings, load_detector
    from .train.samples import export_samples

    store = CaseStore.open(LedgerConfig.load(args.ledger, database_url=args.db))
    try:
        detector = load_detector(args.model, backend=args.backend, settings=DetectorSettings(conf=args.conf))
        report = export_samples(store, detector, Path(args.out))
    finally:
        store.close()
    print(f"{report.negatives} false-alarm sample(s), {report.positives} confirmed sample(s) in {args.out}")
    for s in report.skipped:
        print(f"skipped case {s['case']}: {s['reason']}", file=sys.stderr)
    print(f"retrain with: streetorder train --extra-data {args.out}")
    return 0


def _evaluate_slicing(args: argparse.Namespace) -> int:
    from .train.slicing_eval import slice_study

    report = slice_study(args.model, args.shared, tiles=args.tiles, overlap=args.overlap, threads=args.threads, imgsz=args.imgsz)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return 0
    sc = report["scores"]
    print(f"{report['model']} (onnx, {report['imgsz']} px): full frame vs sliced {report['slicing']['tiles'][0]}x{report['slicing']['tiles'][1]} + full frame, overlap {report['slicing']['overlap']}; matched at IoU {report['match_iou']}")
    print(f"  images: streets-in holdout {report['images']['streets_in_holdout']}, garbage-cn val {report['images']['garbage_cn_val']}")
    for key, r in report["detectors"].items():
        b, g, t = r["streets_in_two_wheelers"], r["garbage_cn_street_classes"], r["ms_per_frame"]
        print(f"  {key:<7} two-wheelers (score >= {sc['two_wheelers']}): recall {b['recall']} precision {b['precision']} ({b['found']}/{b['labels']} found, {b['predictions']} predicted)")
        print(f"  {'':<7} street classes (score >= {sc['street_classes']}): recall {g['recall']} precision {g['precision']} ({g['found']}/{g['labels']} found, {g['predictions']} predicted)")
        print(f"  {'':<7} {t['median']} ms per frame (median of {t['frames']}, p90 {t['p90']})")
    if args.out:
        print(f"written: {args.out}")
    return 0


def _evaluate_cues(args: argparse.Namespace) -> int:
    from .train.cue_eval import cue_report

    report = cue_report(args.model, args.shared, backend=args.backend, reference=args.reference, threads=args.threads, imgsz=args.imgsz)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return 0
    print(f"cue classes of {report['model']}: recall against {report['reference']} at each rule's score")
    print("  images: " + ", ".join(f"{k} {v}" for k, v in report["images"].items()))
    for key, r in report["detectors"].items():
        print(f"  {key}: recall {r['recall']}, two-wheeler mAP50 (human labels) {r['two_wheeler_map50_human']}")
        for c, v in r["per_class"].items():
            print(f"    {c:<13} {v['recall'] if v['recall'] is not None else '–':<7} ({v['reference_boxes']} reference boxes, score >= {v['score']})")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .train.cli import train_from_cli

    return train_from_cli(args, argv=sys.argv)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn
    from sqlalchemy.exc import DBAPIError

    from service.app import create_app
    from service.settings import ServiceSettings

    settings = ServiceSettings.load(
        camera_config=args.config, ledger_config=args.ledger, db=args.db, model=args.model, models_dir=args.models_dir,
        threads=args.threads, conf=args.conf, imgsz=args.imgsz, evidence_dir=args.evidence_dir, public_url=args.public_url,
        max_upload_bytes=args.max_upload_mb * 1024 * 1024 if args.max_upload_mb else None, persist_model=args.persist_model or None,
    )
    try:
        app = create_app(settings)
    except DBAPIError as e:
        raise ValueError(f"cannot open the ledger database: {e.orig}") from None
    # One process: the engine keeps each camera's tracks and open incidents in memory.
    uvicorn.run(app, host=args.host, port=args.port, workers=1, log_level=args.log_level)
    return 0


SERVE_EPILOG = """Every option can also come from the environment: STREETORDER_CAMERA_CONFIG, STREETORDER_LEDGER_CONFIG
(else STREETORDER_CONFIG), STREETORDER_DB, STREETORDER_MODEL, STREETORDER_MODELS, STREETORDER_THREADS, STREETORDER_CONF,
STREETORDER_IMGSZ, STREETORDER_EVIDENCE_DIR, STREETORDER_PUBLIC_URL, STREETORDER_MAX_UPLOAD_BYTES,
STREETORDER_PERSIST_MODEL; flags win. The API key is read only from STREETORDER_API_KEY (a flag would show in `ps`);
with it set, every route but /health and /ready needs the X-API-Key header (STREETORDER_EVIDENCE_PUBLIC=1 exempts
/evidence). Docs at http://HOST:PORT/docs; the review page at /review."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streetorder", description="Find street-order problems in city footage and turn them into rectification cases.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("detect", help="run the detector over image files and folders", description="Detect objects in images. Bad files are reported one by one; the exit status is 1 if any failed.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders (searched recursively)")
    p.add_argument("--json", action="store_true", help="print one JSON object per image")
    p.add_argument("--no-cue", action="store_true", help="the street model alone, without the cue model its card names (which serves person, bicycle, umbrella, ... as on a vending or parking camera)")
    p.add_argument("--save", metavar="DIR", help="write annotated images to DIR")
    p.add_argument("--slice", action="store_true", help="also detect on overlapping tiles of each image, merged with the full frame (small, dense objects)")
    _add_slice_args(p, "with --slice: ")
    _add_backend_arg(p)
    p.add_argument("--batch", type=int, default=8, help="images per inference batch (default 8)")
    _add_detector_args(p)
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser("evaluate", help="mAP of a model on a YOLO-format dataset", description="Evaluate a model (the shipped ONNX by default) on any YOLO dataset file. Dataset classes are matched to the model's by name, so a dataset may use only some of them.")
    p.add_argument("--data", help="ultralytics dataset YAML (required unless --cues or --slice-study)")
    p.add_argument("--cues", action="store_true", help="instead: recall of the cue classes (person, bicycle, umbrella, ...) against the COCO model at 640 px on the cue-class set (streets-in holdout, vtest frames, garbage-cn val), the model alone and with its cue model")
    p.add_argument("--reference", default="yolo11n-coco", help="with --cues: the reference model (default yolo11n-coco, run at 640 px)")
    p.add_argument("--shared", type=Path, default=SHARED, help="with --cues or --slice-study: the shared data folder (default ../shared)")
    p.add_argument("--slice-study", action="store_true", help="instead: full frame vs sliced inference (ONNX): two-wheeler recall/precision on the streets-in holdout, street-class recall/precision on garbage-cn val, ms per frame")
    _add_slice_args(p, "with --slice-study: ")
    p.add_argument("--out", metavar="JSON", help="with --slice-study: also write the report to this file")
    p.add_argument("--model", help="model name, folder or file (default: models/CURRENT)")
    p.add_argument("--split", default="val", help="dataset split (default val)")
    _add_backend_arg(p)
    p.add_argument("--imgsz", type=int, help="inference size (default: the model's own)")
    p.add_argument("--night", action="store_true", help="evaluate on a night-simulated copy of the split (fixed seed)")
    p.add_argument("--threads", type=int, help="inference threads")
    p.add_argument("--json", action="store_true", help="print JSON with map50, map50_95 and per_class")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("train", help="build the merged dataset and fine-tune the street model (train extra)", description="Build the merged dataset (garbage-cn labels, COCO pseudo-labels, background streets), fine-tune, export ONNX, measure, and write models/<name>/ with its card.")
    from .train.cli import add_train_args

    add_train_args(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "run",
        help="the night batch job: footage and patrol photos -> incidents -> cases",
        description="Run every camera's footage (FOOTAGE/<camera id>/: videos named with their start time, or timestamped "
        "snapshots) and patrol photos (FOOTAGE/patrol/, time and GPS from EXIF) through the engine into the case ledger. "
        "Defaults run the sample city on the sample footage with SQLite and local files.",
    )
    p.add_argument("footage", nargs="?", default=str(SAMPLE_FOOTAGE), help=f"footage folder (default {SAMPLE_FOOTAGE.relative_to(REPO)})")
    p.add_argument("--config", default=str(SAMPLE_CONFIG), help=f"camera/zone/rule config YAML (default {SAMPLE_CONFIG.relative_to(REPO)})")
    p.add_argument("--ledger", help="ledger config YAML (default: embedded; SQLite var/streetorder.db, evidence in var/evidence)")
    p.add_argument("--db", help="database URL, e.g. postgresql://root@127.0.0.1/test (overrides the ledger config)")
    p.add_argument("--model", help="model name, folder or .onnx (default: models/CURRENT)")
    p.add_argument("--conf", type=float, default=0.25, help="detector score threshold (default 0.25; rules apply their own on top)")
    p.add_argument("--threads", type=int, help="inference threads")
    _add_backend_arg(p)
    p.add_argument("--every", type=float, default=2.0, help="seconds of video between sampled frames (default 2)")
    p.add_argument("--batch", type=int, default=4, help="frames per detector batch (default 4)")
    p.add_argument("--deliver", action="store_true", help="deliver the outbox (webhook/MQTT) once after the run")
    p.add_argument("--json", action="store_true", help="print the run summary as JSON")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("scenarios", help="run the shipped engine scenarios and score incidents", description="Compose the shipped scenarios from real images, run the detector and the engine, and report incident-level recall, precision and duplicate rate (with and without detection dropout). Exit status 1 unless recall and precision are both 1.")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--model", help="model (default: models/CURRENT)")
    p.add_argument("--conf", type=float, default=0.25, help="detector score threshold (default 0.25)")
    p.add_argument("--threads", type=int, help="inference threads")
    _add_backend_arg(p)
    p.add_argument("--dropout", default="0,0.3", help="comma-separated shares of frames whose detections are dropped (default 0,0.3)")
    p.add_argument("--seed", type=int, default=0, help="dropout random seed")
    p.add_argument("--only", help="comma-separated scenario names")
    p.add_argument("--folder", help="scenario folder (default datasets/scenarios)")
    p.add_argument("--data-root", default=str(SHARED_DATA), help="where scenario images are read from (default ../shared/data)")
    p.set_defaults(func=cmd_scenarios)

    p = sub.add_parser("samples", help="turn reviewed cases into training samples", description="Export every reviewed case's best frame as a YOLO sample: a rejected case (false alarm) with the violation's boxes as background, a confirmed one with them as labels; every other object the model sees stays labelled. Feed the folder to `streetorder train --extra-data`.")
    p.add_argument("action", choices=["export"])
    p.add_argument("--out", required=True, help="output folder (images/, labels/, samples.json)")
    p.add_argument("--ledger", help="ledger config YAML")
    p.add_argument("--db", help="database URL (overrides the ledger config)")
    p.add_argument("--model", help="model that labels the other objects (default: models/CURRENT)")
    p.add_argument("--conf", type=float, default=0.4, help="score for the model's labels (default 0.4, as the pseudo-labels)")
    _add_backend_arg(p)
    p.set_defaults(func=cmd_samples)

    p = sub.add_parser("config", help="check a camera config, or print its JSON schema", description="check FILE: validate a camera/zone/rule config and summarize it (errors name file:line and field). schema: the JSON schema, with a title and description for every field.")
    p.add_argument("action", choices=["check", "schema"])
    p.add_argument("file", nargs="?", default=str(SAMPLE_CONFIG), help="config YAML for 'check' (default: the sample city)")
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("bench", help="serving-path benchmarks (prints its figures as JSON)", description="Every available backend (onnx, openvino, ultralytics if installed) side by side on real images, one image at a time in round-robin, at the model's size: median ms per image and the ratio to onnx. Then, with --backend: detector latency and throughput (batch 1 vs 8, 1 thread vs all cores, measured interleaved in one run) and the engine's share of frame time and peak Python memory on the sample lane clip.")
    p.add_argument("--model", help="model (default: models/CURRENT)")
    _add_backend_arg(p)
    p.add_argument("--images", type=int, default=30, help="real images for the backend comparison (default 30)")
    p.add_argument("--data", default=str(SHARED_DATA / "garbage-cn" / "val" / "images"), help="folder of images for the backend comparison (default ../shared/data/garbage-cn/val/images)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser(
        "serve", help="run the live HTTP service (frames, patrol photos, cases, review page)", epilog=SERVE_EPILOG,
        description="Serve the detector, the violation engine and the case ledger over HTTP (FastAPI on uvicorn, one\n"
        "process). Camera config and fixture edits and model swaps (PUT /models/current) take effect without a restart.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--config", metavar="YAML", help=f"camera, zone and rule config (default {SAMPLE_CONFIG.relative_to(REPO)})")
    p.add_argument("--ledger", metavar="YAML", help="ledger config (default: $STREETORDER_CONFIG, else built-in defaults)")
    p.add_argument("--db", metavar="URL", help="ledger database: sqlite:///FILE or postgresql://USER@HOST:PORT/DB")
    p.add_argument("--model", help="model name under the models dir, a model folder or an .onnx file (default: models/CURRENT)")
    p.add_argument("--models-dir", metavar="DIR", help="models directory (default: $STREETORDER_MODELS, else models/)")
    p.add_argument("--persist-model", action="store_true", help="PUT /models/current also rewrites models/CURRENT")
    p.add_argument("--conf", type=float, help="detector score floor (default 0.25)")
    p.add_argument("--imgsz", type=int, help="inference size in pixels (default: the model's own)")
    p.add_argument("--threads", type=int, help="onnxruntime intra-op threads (default: all cores)")
    p.add_argument("--evidence-dir", metavar="DIR", help="where the engine writes evidence before the ledger stores it (default var/engine-evidence)")
    p.add_argument("--public-url", metavar="URL", help="how clients reach the service; links in responses and outbound messages use it")
    p.add_argument("--max-upload-mb", type=int, help="largest request body in MiB (default 20)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"], help="uvicorn log level (default info)")
    p.set_defaults(func=cmd_serve)

    from .cases.cli import register as register_cases

    register_cases(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into `head` and closed early
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (FileNotFoundError, KeyError, ValueError) as e:
        print(f"error: {e.args[0] if isinstance(e, KeyError) else e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

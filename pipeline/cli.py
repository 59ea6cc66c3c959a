"""The `streetorder` command: one sub-command per job. Heavy imports stay inside each command."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _add_detector_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="model name under models/, a model folder, or an .onnx/.pt file (default: models/CURRENT)")
    p.add_argument("--conf", type=float, default=0.25, help="minimum score (default 0.25)")
    p.add_argument("--iou", type=float, default=0.7, help="NMS IoU threshold (default 0.7)")
    p.add_argument("--imgsz", type=int, help="inference size in pixels (default: the model's own)")
    p.add_argument("--classes", help="comma-separated class names to keep, e.g. garbage,overflow")
    p.add_argument("--threads", type=int, help="onnxruntime intra-op threads (default: all cores)")


def _settings(args: argparse.Namespace):
    from .detect import DetectorSettings

    classes = tuple(c.strip() for c in args.classes.split(",") if c.strip()) if args.classes else None
    return DetectorSettings(conf=args.conf, iou=args.iou, imgsz=args.imgsz, classes=classes)


def cmd_detect(args: argparse.Namespace) -> int:
    from .detect import detections_to_records, load_detector
    from .detect.files import detect_files
    from .images import expand_paths

    detector = load_detector(args.model, backend=args.backend, settings=_settings(args), threads=args.threads)
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


REPO = Path(__file__).resolve().parents[1]
SAMPLE_CONFIG = REPO / "datasets" / "sample-city.yaml"
SAMPLE_FOOTAGE = REPO / "datasets" / "samples" / "footage"


def cmd_run(args: argparse.Namespace) -> int:
    import tempfile

    from .batch import run_batch
    from .cases import AutoVerifier, CaseStore, LedgerConfig
    from .detect import DetectorSettings, load_detector
    from .engine import Engine
    from .intake import Intake

    ledger = LedgerConfig.load(args.ledger, database_url=args.db)
    detector = load_detector(args.model, settings=DetectorSettings(conf=args.conf), threads=args.threads)
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
    from .detect import DetectorSettings, load_detector
    from .scenarios import SHIPPED, load_scenarios, run_scenario, summarize

    detector = load_detector(args.model, settings=DetectorSettings(conf=args.conf), threads=args.threads)
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
    from .bench import run_all

    print(json.dumps(run_all(args.model, REPO), indent=2))
    return 0


def cmd_samples(args: argparse.Namespace) -> int:
    from .cases import CaseStore, LedgerConfig
    from .detect import DetectorSettings, load_detector
    from .train.samples import export_samples

    store = CaseStore.open(LedgerConfig.load(args.ledger, database_url=args.db))
    try:
        detector = load_detector(args.model, settings=DetectorSettings(conf=args.conf))
        report = export_samples(store, detector, Path(args.out))
    finally:
        store.close()
    print(f"{report.negatives} false-alarm sample(s), {report.positives} confirmed sample(s) in {args.out}")
    for s in report.skipped:
        print(f"skipped case {s['case']}: {s['reason']}", file=sys.stderr)
    print(f"retrain with: streetorder train --extra-data {args.out}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .train.run import train_from_cli

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
    p.add_argument("--save", metavar="DIR", help="write annotated images to DIR")
    p.add_argument("--backend", choices=["onnx", "ultralytics"], default="onnx", help="onnx (serving, default) or ultralytics (needs the train extra)")
    p.add_argument("--batch", type=int, default=8, help="images per inference batch (default 8)")
    _add_detector_args(p)
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser("evaluate", help="mAP of a model on a YOLO-format dataset", description="Evaluate a model (the shipped ONNX by default) on any YOLO dataset file. Dataset classes are matched to the model's by name, so a dataset may use only some of them.")
    p.add_argument("--data", required=True, help="ultralytics dataset YAML")
    p.add_argument("--model", help="model name, folder or file (default: models/CURRENT)")
    p.add_argument("--split", default="val", help="dataset split (default val)")
    p.add_argument("--backend", choices=["onnx", "ultralytics"], default="onnx")
    p.add_argument("--imgsz", type=int, help="inference size (default: the model's own)")
    p.add_argument("--night", action="store_true", help="evaluate on a night-simulated copy of the split (fixed seed)")
    p.add_argument("--threads", type=int, help="onnxruntime threads")
    p.add_argument("--json", action="store_true", help="print JSON with map50, map50_95 and per_class")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("train", help="build the merged dataset and fine-tune the street model (train extra)", description="Build the merged dataset (garbage-cn labels, COCO pseudo-labels, background streets), fine-tune, export ONNX, measure, and write models/<name>/ with its card.")
    from .train.run import add_train_args

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
    p.add_argument("--threads", type=int, help="onnxruntime threads")
    p.add_argument("--every", type=float, default=2.0, help="seconds of video between sampled frames (default 2)")
    p.add_argument("--batch", type=int, default=4, help="frames per detector batch (default 4)")
    p.add_argument("--deliver", action="store_true", help="deliver the outbox (webhook/MQTT) once after the run")
    p.add_argument("--json", action="store_true", help="print the run summary as JSON")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("scenarios", help="run the shipped engine scenarios and score incidents", description="Compose the shipped scenarios from real images, run the detector and the engine, and report incident-level recall, precision and duplicate rate (with and without detection dropout). Exit status 1 unless recall and precision are both 1.")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--model", help="model (default: models/CURRENT)")
    p.add_argument("--conf", type=float, default=0.25, help="detector score threshold (default 0.25)")
    p.add_argument("--threads", type=int, help="onnxruntime threads")
    p.add_argument("--dropout", default="0,0.3", help="comma-separated shares of frames whose detections are dropped (default 0,0.3)")
    p.add_argument("--seed", type=int, default=0, help="dropout random seed")
    p.add_argument("--only", help="comma-separated scenario names")
    p.add_argument("--folder", help="scenario folder (default datasets/scenarios)")
    p.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"), help="where scenario images are read from (default ../shared/data)")
    p.set_defaults(func=cmd_scenarios)

    p = sub.add_parser("samples", help="turn reviewed cases into training samples", description="Export every reviewed case's best frame as a YOLO sample: a rejected case (false alarm) with the violation's boxes as background, a confirmed one with them as labels; every other object the model sees stays labelled. Feed the folder to `streetorder train --extra-data`.")
    p.add_argument("action", choices=["export"])
    p.add_argument("--out", required=True, help="output folder (images/, labels/, samples.json)")
    p.add_argument("--ledger", help="ledger config YAML")
    p.add_argument("--db", help="database URL (overrides the ledger config)")
    p.add_argument("--model", help="model that labels the other objects (default: models/CURRENT)")
    p.add_argument("--conf", type=float, default=0.4, help="score for the model's labels (default 0.4, as the pseudo-labels)")
    p.set_defaults(func=cmd_samples)

    p = sub.add_parser("config", help="check a camera config, or print its JSON schema", description="check FILE: validate a camera/zone/rule config and summarize it (errors name file:line and field). schema: the JSON schema, with a title and description for every field.")
    p.add_argument("action", choices=["check", "schema"])
    p.add_argument("file", nargs="?", default=str(SAMPLE_CONFIG), help="config YAML for 'check' (default: the sample city)")
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("bench", help="serving-path benchmarks (prints its figures)", description="Detector latency and throughput (batch 1 vs 8, 1 thread vs all cores, measured interleaved in one run) and the engine's share of frame time and peak Python memory on the sample lane clip.")
    p.add_argument("--model", help="model (default: models/CURRENT)")
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

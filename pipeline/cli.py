"""The `streetorder` command: one sub-command per job. Heavy imports stay inside each command."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .cases.cli import add_ledger_args
from .cli_options import add_backend_arg, add_detector_args, add_slice_args, detector_settings
from .paths import REPO, SAMPLE_CONFIG, SAMPLE_FOOTAGE


def cmd_detect(args: argparse.Namespace) -> int:
    from .detect import detections_to_records, load_detector
    from .detect.cascade import load_cue_cascade
    from .detect.files import detect_files
    from .source.images import expand_paths

    detector = (load_detector if args.no_cue else load_cue_cascade)(args.model, backend=args.backend, settings=detector_settings(args), threads=args.threads)
    if args.slice:
        from .detect.plan import sliced_detector
        from .detect.slicing import SliceSettings

        detector = sliced_detector(detector, settings=SliceSettings(tiles=args.tiles, overlap=args.overlap))  # each model at its own input size
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


def cmd_run(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from .cases import CaseStore, LedgerConfig
    from .db.storage import StorageError, check_ledger_storage
    from .db.urls import redact

    started_at = datetime.now(UTC)
    if args.workers is not None and args.workers < 1:
        raise ValueError("--workers must be at least 1")
    ledger = LedgerConfig.load(args.ledger, database_url=args.db)
    report_dir = None if args.no_report else Path(args.report)
    try:  # before a minute is spent on decoding: a night that cannot be written down is not worth running
        check_ledger_storage(ledger, *([("report directory", report_dir)] if report_dir else []))
        store = CaseStore.open(ledger)
    except StorageError as e:
        print(f"error: the night did not start: {e}", file=sys.stderr)
        return 2
    from .night.job import run_batch  # the heavy imports, once the night can be written down
    from .config import load_config
    from .detect.registry import resolve_model
    from .config.settings import PipelineSettings
    from .night.units import NightSettings

    try:
        config = load_config(args.config)
        settings = NightSettings(
            model=args.model, model_name=resolve_model(args.model).name, backend=args.backend, conf=args.conf, threads=args.threads,
            every_s=args.every, batch=args.batch, checkpoint_s=args.checkpoint_every, gate=not args.no_gate,
            streams=PipelineSettings.load(night_streams=args.streams).night_streams,
        )
        summary = run_batch(store, config, Path(args.footage), settings, workers=args.workers, ray=args.ray, fresh=args.fresh, progress=not args.json)
        report = summary.as_dict() | {"database": redact(ledger.database_url), "evidence_dir": str(ledger.evidence_dir)}
        if report_dir:
            report |= _night_report(store, summary, config, Path(args.footage), started_at, report_dir, report["database"])
        if args.deliver and not summary.stopped:
            from .cases.delivery import outbox_worker

            stats = outbox_worker(store.db, ledger).deliver_pending(datetime.now(UTC))
            report["delivered"] = {"sent": stats.sent, "failed": stats.failed, "dead": stats.dead}
    finally:
        store.close()
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print(f"{report['files']} files, {report['frames']} frames, {report['photos']} patrol photos in {report['seconds']} s ({report['workers']} worker(s))")
        if report["sources_done_before"]:
            print(f"resumed: {report['sources_done_before']} source(s) finished by an earlier run of this night were not decoded again (--fresh to redo them)")
        print(f"incidents opened {report['incidents_opened']}, ended {report['incidents_ended']}; cases created {report['cases_created']}, updated {report['cases_updated']}, reopened {report['cases_reopened']}; auto-verified {report['auto_verified']}, escalated {report['escalated']}")
        print(f"ledger: {report['database']}  (see: streetorder cases list)")
        if report.get("report"):
            print(f"report of the night: {report['report']}")
        for f in report["failed"]:
            print(f"error: {f['path']}: {f['error']}", file=sys.stderr)
    if report.get("report_error"):
        print(f"error: {report['report_error']}", file=sys.stderr)
    if summary.stopped:
        print(f"error: the night stopped early: {summary.stopped}", file=sys.stderr)
        return 3
    return 1 if report["failed"] or report.get("report_error") else 0


def _night_report(store, summary, config, footage: Path, started_at, out_dir: Path, database: str) -> dict:
    """Write the HTML report of the night; a report that cannot be written is an error line, not a lost night."""
    from .db.storage import StorageError, storage_error
    from .night.report import build_night_report, report_path, write_night_report

    path = report_path(out_dir, started_at, store.config.report_timezone)
    try:
        night = build_night_report(store, summary, config, footage=footage, started_at=started_at, database=database)
        return {"report": str(write_night_report(night, path))}
    except StorageError as e:
        return {"report_error": f"report of the night not written: {e}"}
    except OSError as e:
        return {"report_error": f"report of the night not written: {storage_error('report', path, e) or e}"}


def cmd_config(args: argparse.Namespace) -> int:
    from .config import config_schema, load_config

    if args.action == "schema":
        print(json.dumps(config_schema(), indent=2, ensure_ascii=False))
        return 0
    from .config import StreamCredentialsError

    config = load_config(args.file)
    unset = 0
    for c in config.cameras:
        zones = ", ".join(f"{z.id} ({z.kind}{', scheduled' if z.schedule else ''})" for z in c.zones) or "no zones"
        stream = ""
        if c.stream is not None:
            stream = f"; stream {c.stream.kind} every {c.stream.every_s:g} s"
            try:
                c.stream.credentials()
            except StreamCredentialsError as e:  # not an error of the file: the service's environment may set them
                stream += f" (warning: {e} here)"
                unset += 1
        print(f"{c.id}: {c.location.district} / {c.location.point}, {c.resolution[0]}x{c.resolution[1]}; {zones}; {len(c.fixtures)} fixture(s){stream}")
    print(f"ok: {len(config.cameras)} camera(s)" + (f"; {unset} stream(s) without their credentials in this environment" if unset else ""))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streetorder", description="Find street-order problems in city footage and turn them into rectification cases.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("detect", help="run the detector over image files and folders", description="Detect objects in images. Bad files are reported one by one; the exit status is 1 if any failed.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders (searched recursively)")
    p.add_argument("--json", action="store_true", help="print one JSON object per image")
    p.add_argument("--no-cue", action="store_true", help="the street model alone, without the cue model its card names (which serves person, bicycle, umbrella, ... as on a vending or parking camera)")
    p.add_argument("--save", metavar="DIR", help="write annotated images to DIR")
    p.add_argument("--slice", action="store_true", help="also detect on overlapping tiles of each image, merged with the full frame (small, dense objects)")
    add_slice_args(p, "with --slice: ")
    add_backend_arg(p)
    p.add_argument("--batch", type=int, default=8, help="images per inference batch (default 8)")
    add_detector_args(p)
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser(
        "run",
        help="the night batch job: footage and patrol photos -> incidents -> cases",
        description="Run every camera's footage (FOOTAGE/<camera id>/: videos named with their start time, or timestamped "
        "snapshots) and patrol photos (FOOTAGE/patrol/, time and GPS from EXIF) through the engine into the case ledger. "
        "Cameras run in parallel worker processes (--workers) or on a Ray cluster (--ray); progress is kept in the ledger, so the same night "
        "run again continues where it stopped. Defaults run the sample city on the sample footage with SQLite and local files. Exit status: 0 all went well, "
        "1 some files failed or were skipped (each is listed with its reason), 2 the night did not start (a bad config, "
        "a ledger or report folder that cannot be written), 3 it stopped early (the ledger's disk filled up or became read-only).",
    )
    p.add_argument("footage", nargs="?", default=str(SAMPLE_FOOTAGE), help=f"footage folder (default {SAMPLE_FOOTAGE.relative_to(REPO)})")
    p.add_argument("--config", default=str(SAMPLE_CONFIG), help=f"camera/zone/rule config YAML (default {SAMPLE_CONFIG.relative_to(REPO)})")
    add_ledger_args(p)
    p.add_argument("--model", help="model name, folder or .onnx (default: models/CURRENT)")
    p.add_argument("--conf", type=float, default=0.25, help="detector score threshold (default 0.25; rules apply their own on top)")
    p.add_argument("--threads", type=int, help="inference threads per detector stream (default: the worker's cores shared out between its streams)")
    p.add_argument("--streams", help="detector batches run at once in each worker, beside the decoding: 'auto' (default, STREETORDER_NIGHT_STREAMS) or a number; auto: one single-threaded stream per core, at most 4; 0: the detector in the decoding thread, as before")
    add_backend_arg(p)
    p.add_argument("--every", type=float, default=2.0, help="seconds of video between sampled frames (default 2)")
    p.add_argument("--batch", type=int, default=4, help="frames per detector batch (default 4)")
    p.add_argument("--workers", type=int, help="cameras processed in parallel, one worker process each (default: every core); with --ray, Ray workers (default: the cluster's CPUs)")
    p.add_argument("--ray", metavar="ADDRESS", help="run the cameras on the Ray cluster at ADDRESS (host:port, as `ray start --head` prints), or 'local' for a Ray instance on this machine; needs the 'ray' extra")
    p.add_argument("--checkpoint-every", type=float, default=300.0, metavar="S", help="seconds of footage between progress records inside a video (default 300): a killed run resumes from the last one")
    p.add_argument("--fresh", action="store_true", help="ignore what an earlier run of this night recorded and process everything again (posting stays idempotent)")
    p.add_argument("--no-gate", action="store_true", help="run the detector on every sampled frame: turn off each camera's change gate (for comparison; a separate night for resuming)")
    p.add_argument("--deliver", action="store_true", help="deliver the outbox (webhook/MQTT) once after the run")
    p.add_argument("--report", default="var/reports", metavar="DIR", help="write the HTML report of the night (cases with thumbnails, a timeline per camera, files that failed) to DIR/night-<start time>.html; the summary names it (default var/reports)")
    p.add_argument("--no-report", action="store_true", help="no HTML report")
    p.add_argument("--json", action="store_true", help="print the run summary as JSON")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("config", help="check a camera config, or print its JSON schema", description="check FILE: validate a camera/zone/rule config and summarize it (errors name file:line and field). schema: the JSON schema, with a title and description for every field.")
    p.add_argument("action", choices=["check", "schema"])
    p.add_argument("file", nargs="?", default=str(SAMPLE_CONFIG), help="config YAML for 'check' (default: the sample city)")
    p.set_defaults(func=cmd_config)

    from service.cli import register as register_serve

    from .bench.cli import register as register_bench
    from .cases.cli import register as register_cases
    from .train.cli import register as register_train

    register_train(sub)
    register_bench(sub, bench_serve=cmd_bench_serve, bench_streams=cmd_bench_streams)
    register_serve(sub)
    register_cases(sub)
    return parser


def cmd_bench_serve(args: argparse.Namespace) -> int:
    """`streetorder bench serve` is the service's own bench (`service.bench`; `--burst`: `service.bench_burst`;
    `--first-frames`: `service.bench_first_frames`;
    `--ray`: `service.cluster.bench`), imported when it runs."""
    if args.first_frames:
        from service.bench_first_frames import cmd_bench_first_frames as run
    elif args.burst:
        from service.bench_burst import cmd_bench_burst as run
    elif args.ray:
        from service.cluster.bench import cmd_bench_serve_ray as run
    else:
        from service.bench import cmd_bench_serve as run

    return run(args)


def cmd_bench_streams(args: argparse.Namespace) -> int:
    """`streetorder bench streams` starts the service too (`service.bench_streams`), imported when it runs."""
    from service.bench_streams import cmd_bench_streams as run

    return run(args)


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

"""`streetorder train|evaluate|samples`: the model's sub-commands. `train` runs build → fit → export → measure →
card, each stage re-runnable on its own. Heavy imports stay inside each command."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from ..cases.cli import add_ledger_args
from ..cli_options import add_backend_arg, add_slice_args
from ..paths import SHARED
from .versions import DEFAULT_ROOT, samples_root
from ..samples.export_formats import FORMATS
from .trainer import TrainConfig

STAGES = ("build", "fit", "export", "measure")


def add_train_args(p: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    p.add_argument("--name", default=d.name, help=f"model version (default {d.name}); written to models/<name>/")
    p.add_argument("--base", type=Path, default=d.base, help=f"COCO starting weights and teacher (default {d.base})")
    p.add_argument("--init", type=Path, default=d.init, help="weights to fine-tune from (default: --base); e.g. models/street-v1/model.pt")
    p.add_argument("--garbage-cn", type=Path, default=d.garbage_cn, help=f"garbage-cn root (default {d.garbage_cn})")
    p.add_argument("--streets-in", type=Path, default=d.streets_in, help=f"background streets root (default {d.streets_in})")
    p.add_argument("--streets-split", type=Path, default=d.streets_split, help=f"exclude/holdout lists (default {d.streets_split})")
    p.add_argument("--extra-data", type=Path, nargs="*", default=[], metavar="DIR", help="reviewed-sample folders (streetorder samples export) to add to training")
    p.add_argument("--pseudo-conf", type=float, default=d.pseudo_conf, help=f"teacher score for a pseudo-label (default {d.pseudo_conf})")
    p.add_argument("--imgsz", type=int, default=d.imgsz, help=f"training size (default {d.imgsz})")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"epochs (default {d.epochs})")
    p.add_argument("--close-mosaic", type=int, default=d.close_mosaic, help=f"final epochs without mosaic (default {d.close_mosaic})")
    p.add_argument("--warmup-epochs", type=float, default=d.warmup_epochs, help=f"learning-rate warm-up epochs (default {d.warmup_epochs})")
    p.add_argument("--batch", type=int, default=d.batch, help=f"batch size (default {d.batch})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"random seed (default {d.seed})")
    p.add_argument("--night-p", type=float, default=d.night_p, help=f"night augmentation probability (default {d.night_p})")
    p.add_argument("--workers", type=int, default=d.workers, help=f"dataloader workers (default {d.workers})")
    p.add_argument("--threads", type=int, default=d.threads, help=f"torch CPU threads (default: all {d.threads} cores)")
    p.add_argument("--device", default=d.device, help="cpu or a CUDA index (default cpu)")
    p.add_argument("--cue-model", default=d.cue_model, help="model under models/ that serves the COCO cue classes beside this one on vending and parking cameras (card only)")
    p.add_argument("--cue-imgsz", type=int, default=d.cue_imgsz, help=f"input size of the cue model (default {d.cue_imgsz})")
    p.add_argument("--compare-with", default=d.compare_with, help="model the card compares this one with (e.g. street-v1)")
    p.add_argument("--workdir", type=Path, default=d.workdir, help=f"scratch folder (default {d.workdir})")
    p.add_argument("--models-dir", type=Path, default=d.models_dir, help=f"where models/<name>/ goes (default {d.models_dir})")
    p.add_argument("--stage", choices=("all",) + STAGES, default="all", help="run one stage only (default: all, in order)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted fit from its last checkpoint")


def train_from_cli(args: argparse.Namespace, argv: list[str]) -> int:
    fields = TrainConfig.model_fields
    cfg = TrainConfig(**{k: v for k, v in vars(args).items() if k in fields})
    command = "streetorder " + shlex.join(_without_stage_flags(argv[1:]))
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    record = cfg.run_dir / "train_command.json"
    stages = STAGES if args.stage == "all" else (args.stage,)
    if "fit" in stages or not record.exists():
        record.write_text(json.dumps({"command": command, "config": json.loads(cfg.model_dump_json())}, indent=2))
    for stage in stages:
        print(f"== {stage}", flush=True)
        if stage == "build":
            from .dataset import Sources, build_dataset

            report = build_dataset(Sources(cfg.garbage_cn, cfg.streets_in, cfg.streets_split), cfg.data_dir, cfg.base, cfg.pseudo_conf, extra=cfg.extra_data)
            print(json.dumps(report.images), f"pseudo-label overlaps dropped: {report.pseudo_dropped_overlap}")
        elif stage == "fit":
            from .trainer import fit

            print(f"best checkpoint: {fit(cfg, resume=args.resume)}")
        elif stage == "export":
            from .trainer import export

            best = cfg.run_dir / "runs" / "fit" / "weights" / "best.pt"
            print("exported:", *export(cfg, best))
        elif stage == "measure":
            from .card import write_card

            card = write_card(cfg, json.loads(record.read_text())["command"])
            print(json.dumps(card["metrics"]["garbage_cn_val"], indent=2))
    return 0


def _without_stage_flags(args: list[str]) -> list[str]:
    """The command that reproduces the whole model: `--stage X` and `--resume` only say how far this call went."""
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a == "--stage":
            skip = True
        elif not (a.startswith("--stage=") or a == "--resume"):
            out.append(a)
    return out


def cmd_evaluate(args: argparse.Namespace) -> int:
    if args.candidate or args.report:
        from .loop_cli import cmd_evaluate_candidate

        return cmd_evaluate_candidate(args)
    if args.slice_study:
        return _evaluate_slicing(args)
    if args.cues:
        return _evaluate_cues(args)
    if args.vending:
        return _evaluate_vending(args)
    if not args.data:
        raise SystemExit("streetorder evaluate: --data is required (or --cues, --vending, or --slice-study)")
    from .evaluate import evaluate_model

    report = evaluate_model(args.data, args.model, split=args.split, backend=args.backend, imgsz=args.imgsz, night=args.night, threads=args.threads)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print(f"{report['model']} on {report['data']} ({report['split']}{', night' if args.night else ''}, {report['images']} images)")
        print(f"  mAP50 {report['map50']:.3f}  mAP50-95 {report['map50_95']:.3f}")
        for name, m in report["per_class"].items():
            print(f"  {name:<14} mAP50 {m['map50']:.3f}  mAP50-95 {m['map50_95']:.3f}  ({m['instances']} boxes)")
    return 0


def _evaluate_slicing(args: argparse.Namespace) -> int:
    from .slicing_eval import slice_study

    report = slice_study(
        args.model, args.shared, tiles=args.tiles, overlap=args.overlap, threads=args.threads, imgsz=args.imgsz, garbage=not args.no_garbage, size=args.photo_size,
    )
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return 0
    sc, sl = report["scores"], report["slicing"]
    print(f"{report['model']} served as {report['served']}: full frame vs sliced {sl['tiles'][0]}x{sl['tiles'][1]}+ (tiles <= each model's input; per model on 640/1024/1920x1080 frames: {sl['tiles_per_frame']}), overlap {sl['overlap']}, merge IoU {sl['merge_iou']}, cut boxes dropped: {sl['drop_cut']}")
    print("  images: " + ", ".join(f"{k} {v}" for k, v in report["images"].items()) + f"; two-wheelers at score >= {sc['two_wheelers']}, matched at IoU {report['match_iou']}")
    for key, r in report["detectors"].items():
        b, h, g = r["streets_in_two_wheelers"], r["heap_photos"], r["garbage_cn_street_classes"]
        print(f"  {key:<11} holdout two-wheelers: recall {b['recall']} precision {b['precision']} ({b['found']}/{b['labels']}, {b['predictions']} predicted)")
        print(f"  {'':<11} heap photos: recall {h['recall']} precision {h['precision']}; loose match ({report['heap_loose_match']}) {h['loose']['recall']} / {h['loose']['precision']} ({h['predictions']} counted, {h['labels']} labelled)")
        if g["labels"]:
            print(f"  {'':<11} street classes (score >= {sc['street_classes']}): recall {g['recall']} precision {g['precision']}")
    for key, per in report.get("curves", {}).items():
        print(f"  curve, {key} (two-wheeler score: holdout recall/precision; heap photos, loose: recall/precision):")
        for t, r in per.items():
            h, l = r["holdout"], r["heaps_loose"]
            print(f"    >= {t:<5} holdout {h['recall']} / {h['precision']}   heaps {l['recall']} / {l['precision']}")
    for key, t in report["ms_per_frame"].items():
        print(f"  ms per frame, {key}: median {t['median']}, p90 {t['p90']} ({t['frames']} frames)")
    if args.out:
        print(f"written: {args.out}")
    return 0


def _evaluate_cues(args: argparse.Namespace) -> int:
    from .cue_eval import cue_report

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


def _evaluate_vending(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..detect import DetectorSettings
    from ..detect.cascade import load_cue_cascade
    from .vending_eval import EVAL_LIST, summary_line, vending_photo_report

    detector = load_cue_cascade(args.model, backend=args.backend, settings=DetectorSettings(conf=0.25), threads=args.threads)
    rules = load_config(args.config).rules if args.config else None
    report = vending_photo_report(detector, rules, listing=args.listing or EVAL_LIST, data_root=args.shared / "data")
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return 0
    for group, g in report["groups"].items():
        print(f"{group}: {g['vending_cases']} of {g['photos']} photos became vending cases")
        for r in g["results"]:
            if r["vending"] != (group == "vending"):
                print(f"  {'missed' if group == 'vending' else 'false'}: {r['image']}" + (f" ({', '.join(r['classes'])})" if r["classes"] else ""))
    print(summary_line(report))
    return 0


def cmd_samples(args: argparse.Namespace) -> int:
    if args.action in ("select", "experiment"):
        from .loop_cli import cmd_experiment, cmd_select

        return cmd_select(args) if args.action == "select" else cmd_experiment(args)
    from ..cases import CaseStore, LedgerConfig
    from ..formats.yolo import LabelError

    store = CaseStore.open(LedgerConfig.load(args.ledger, database_url=args.db))
    try:
        if args.action == "import":
            from ..samples.exchange import import_samples

            from ..cases.annotations import StaleLabels

            try:
                done = import_samples(store, args.format, Path(args.path), reviewer=args.reviewer, manifest_path=args.manifest)
            except (LabelError, StaleLabels) as e:
                print(f"nothing imported: {e}", file=sys.stderr)
                return 1
            print(done.message())
            return 0
        from ..samples.exchange import export_samples

        detector = None
        if args.pseudo == "model":
            from ..detect import DetectorSettings, load_detector

            detector = load_detector(args.model, backend=args.backend, settings=DetectorSettings(conf=args.conf))
        report = export_samples(store, detector, Path(args.out), fmt=args.format)
    finally:
        store.close()
    print(f"{report.version}: {report.samples} sample(s) ({report.negatives} from rejected cases, {report.positives} from dispatched ones), format {args.format}")
    print("  labels per class: " + ", ".join(f"{c} {n}" for c, n in report.labels.items() if n))
    for s in report.skipped:
        print(f"skipped case {s['case']}: {s['reason']}", file=sys.stderr)
    print(f"retrain with: streetorder train --extra-data {report.version}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    return train_from_cli(args, argv=sys.argv)


def _photo_size(text: str) -> int:
    if not text.isdigit() or not 64 <= int(text) <= 4096:
        raise argparse.ArgumentTypeError(f"'{text}' is not a photo size; give the side in pixels, 64..4096")
    return int(text)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the model's commands to the `streetorder` sub-command parser."""
    p = sub.add_parser("evaluate", help="mAP of a model on a YOLO-format dataset", description="Evaluate a model (the shipped ONNX by default) on any YOLO dataset file. Dataset classes are matched to the model's by name, so a dataset may use only some of them.")
    p.add_argument("--data", help="ultralytics dataset YAML (required unless --cues or --slice-study)")
    p.add_argument("--cues", action="store_true", help="instead: recall of the cue classes (person, bicycle, umbrella, ...) against the COCO model at 640 px on the cue-class set (streets-in holdout, vtest frames, garbage-cn val), the model alone and with its cue model")
    p.add_argument("--vending", action="store_true", help="instead: real photos as patrol photos (datasets/vending-eval.yaml: vending, borderline, clean streets) through the served detector and the rules; how many become vending cases")
    p.add_argument("--listing", type=Path, help="with --vending: the photo list (default datasets/vending-eval.yaml)")
    p.add_argument("--config", type=Path, help="with --vending: take the rules from this camera config (default: the rules' defaults)")
    p.add_argument("--reference", default="yolo11n-coco", help="with --cues: the reference model (default yolo11n-coco, run at 640 px)")
    p.add_argument("--shared", type=Path, default=SHARED, help="with --cues, --vending or --slice-study: the shared data folder (default ../shared)")
    p.add_argument("--slice-study", action="store_true", help="instead: the served cascade (street + cue model, ONNX) on the full frame vs sliced with each merge: two-wheeler recall/precision on the streets-in holdout and the heap photos, street-class recall/precision on garbage-cn val, ms per frame")
    add_slice_args(p, "with --slice-study: ")
    p.add_argument("--out", metavar="JSON", help="with --slice-study: also write the report to this file")
    p.add_argument("--no-garbage", action="store_true", help="with --slice-study: skip garbage-cn val (two-wheelers only; most of the time saved)")
    p.add_argument("--photo-size", type=_photo_size, metavar="PX", help="with --slice-study: resize the photos to PX x PX first (1024: the size of the held-out rack photos)")
    p.add_argument("--model", help="model name, folder or file (default: models/CURRENT)")
    p.add_argument("--split", default="val", help="dataset split (default val)")
    add_backend_arg(p)
    p.add_argument("--imgsz", type=int, help="inference size (default: the model's own)")
    p.add_argument("--night", action="store_true", help="evaluate on a night-simulated copy of the split (fixed seed)")
    p.add_argument("--threads", type=int, help="inference threads")
    p.add_argument("--json", action="store_true", help="print JSON with map50, map50_95 and per_class")
    p.add_argument("--candidate", help="instead: score this model and the current one (or --against) on the fixed benchmark and give the promotion gate's verdict")
    p.add_argument("--against", help="with --candidate: the model to compare with (default: models/CURRENT)")
    p.add_argument("--report", metavar="DIR", help="with --candidate: also write an HTML report (per-class PR curves, confusion matrices, the verdict)")
    from .loop_cli import add_gate_args

    add_gate_args(p, "with --candidate: ")
    add_ledger_args(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("train", help="build the merged dataset and fine-tune the street model (train extra)", description="Build the merged dataset (garbage-cn labels, COCO pseudo-labels, background streets), fine-tune, export ONNX, measure, and write models/<name>/ with its card.")
    add_train_args(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "samples", help="reviewed frames as a versioned dataset; export to and import from annotation tools; choose what to label next",
        description="Reviewed frames (a review decision, or boxes saved in the review page's editor) as versioned training data, and the way to CVAT and Label Studio and back.",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    e = actions.add_parser(
        "export", help="write the next dataset version ROOT/vNNNN/",
        description="Write every reviewed frame into a new version ROOT/vNNNN/ (never overwriting one): YOLO images/ and labels/ for `streetorder train --extra-data`, "
        "manifest.json (provenance per image, class list, counts per class and camera), and --format's files for CVAT (COCO 1.0 zip) or Label Studio (JSON tasks). "
        "Reviewers' boxes are labels, deleted model boxes and rejected violations hard negatives, every other object the model finds a pseudo-label.",
    )
    e.add_argument("--format", choices=FORMATS, default="yolo", help="yolo (default), coco, cvat (COCO 1.0 zip for CVAT) or labelstudio (JSON tasks + labelling config)")
    e.add_argument("--out", type=Path, default=samples_root(), help=f"the root of the versions (default $STREETORDER_SAMPLES or {DEFAULT_ROOT})")
    e.add_argument("--pseudo", choices=["model", "proposals"], default="model", help="pseudo-labels from the current model run on each frame (default) or the proposing model's stored boxes")
    e.add_argument("--model", help="model that labels the other objects (default: models/CURRENT)")
    e.add_argument("--conf", type=float, default=0.4, help="score for the model's labels (default 0.4, as the pseudo-labels)")
    add_backend_arg(e)
    add_ledger_args(e)
    e.set_defaults(func=cmd_samples)
    i_ = actions.add_parser(
        "import", help="bring a labelled batch back from a tool",
        description="Read a labelled batch (a version folder, a COCO JSON, CVAT's COCO 1.0 zip, a Label Studio JSON export) and save each image's boxes as the frame's "
        "label set, by --reviewer, on the case and frame the version's manifest names. Any bad label file (file:line: reason) stops the whole import.",
    )
    i_.add_argument("path", type=Path, help="the labelled batch")
    i_.add_argument("--format", choices=FORMATS, required=True, help="the batch's format")
    i_.add_argument("--manifest", type=Path, help="the exported version's manifest.json (default: found in PATH or a folder above it)")
    i_.add_argument("--reviewer", default="importer", help="who labelled the batch, stored with every annotation (default: importer)")
    add_ledger_args(i_)
    i_.set_defaults(func=cmd_samples)
    from .loop_cli import add_select_args, register as register_loop

    for action, help_ in (
        ("select", "choose the frames most worth labelling next into a labelling task"),
        ("experiment", "select vs random on garbage-cn: does a chosen budget teach the model more? (slow)"),
    ):
        s = actions.add_parser(action, help=help_, description=help_)
        s.add_argument("--out", help="output folder (select: the labelling task, default var/labelling/task-<time>)")
        s.add_argument("--json", action="store_true", help="print JSON")
        add_select_args(s)
        s.add_argument("--model", help="the current model (default: models/CURRENT)")
        s.add_argument("--conf", type=float, default=0.4, help="score for the model's pseudo-labels (default 0.4)")
        add_backend_arg(s)
        add_ledger_args(s)
        s.set_defaults(func=cmd_samples)

    register_loop(sub)
    from .models_cli import register as register_models

    register_models(sub)

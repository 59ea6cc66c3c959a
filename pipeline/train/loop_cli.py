"""The retraining loop's commands: `samples select`, `samples experiment`, `retrain`, `evaluate --candidate`,
`promote`, `rollback`. Heavy imports stay inside each command; promote and rollback need no torch."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path

from ..cases.cli import add_ledger_args
from ..paths import SHARED, SHARED_DATA


# ---- samples select ---------------------------------------------------------------------------------------
def add_select_args(p: argparse.ArgumentParser) -> None:
    from .select import SelectConfig

    d = SelectConfig()
    p.add_argument("--budget", type=int, help=f"frames to choose (select: default {d.budget}; experiment: default 100)")
    p.add_argument("--since", help="with select: only frames taken at or after this date/time (ISO, e.g. 2026-11-20)")
    p.add_argument("--pool", type=Path, help="with select: frame pool folder (default $STREETORDER_FRAME_POOL or var/frames)")
    p.add_argument("--images", type=Path, nargs="*", default=[], metavar="DIR", help="with select: also consider the images in these folders (no camera)")
    p.add_argument("--compare-with", help="with select: model to measure disagreement against (default: the previous promoted model, else yolo11n-coco on the COCO classes)")
    p.add_argument("--train-images", type=Path, nargs="*", metavar="DIR", help="with select: images that stand for the training set in the novelty score (default: 200 of garbage-cn train and the sample versions)")
    p.add_argument("--random-seeds", type=int, nargs="+", metavar="SEED", help="with experiment: seeds of the random arms (default 0 1 2)")
    p.add_argument("--card", type=Path, metavar="MODEL_DIR", help="with experiment: also record the result in this model's card (card.json + README.md)")
    p.add_argument("--threshold", type=float, default=d.threshold, help=f"with select: the rules' decision score (default {d.threshold})")
    p.add_argument("--camera-share", type=float, default=d.camera_share, help=f"with select: most of the budget one camera may take (default {d.camera_share})")
    p.add_argument("--class-share", type=float, default=d.class_share, help=f"with select: most of the budget one leading class may take (default {d.class_share})")


def _since(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise SystemExit(f"streetorder samples select: --since '{text}' is not an ISO date or time (e.g. 2026-11-20 or 2026-11-20T08:00)") from None
    return at


def cmd_select(args: argparse.Namespace) -> int:
    from ..detect import resolve_model
    from ..formats.yolo import list_images
    from ..samples.frame_pool import FramePool, FramePoolConfig
    from ..samples.classes import labelling_classes
    from .promote import history
    from .select import SelectConfig, choose, score_frames, write_task
    from .versions import find_versions

    cfg = SelectConfig(budget=args.budget or SelectConfig().budget, threshold=args.threshold, camera_share=args.camera_share, class_share=args.class_share)
    since = _since(args.since)
    pool = FramePool(FramePoolConfig(root=args.pool)) if args.pool else (FramePool.from_env() or FramePool())
    frames = [(f.image, f.camera, f.taken_at.isoformat()) for f in pool.frames(since)]
    for folder in args.images:
        frames += [(p, None, None) for p in list_images(folder)]
    if not frames:
        raise SystemExit(f"streetorder samples select: no frames in {pool.cfg.root}" + (f" since {since}" if since else "") + " (the night job and the live endpoint fill it; or give --images DIR)")
    model = resolve_model(args.model)
    other = args.compare_with
    if other is None:
        stack = history()["stack"]
        previous = stack[-2] if len(stack) >= 2 else None
        other = previous or ("yolo11n-coco" if (model.onnx.parent.parent / "yolo11n-coco" / "model.onnx").exists() else None)
    if args.train_images is not None:
        train = [p for d in args.train_images for p in list_images(d)]
    else:
        gcn = list_images(SHARED_DATA / "garbage-cn" / "train" / "images")
        train = gcn[:: max(1, len(gcn) // 200)] + [p for v in find_versions() for p in v.images("train")]
    out = Path(args.out) if args.out else Path("var/labelling") / f"task-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}"
    cands = score_frames(model.onnx, frames, cfg, train, other=(resolve_model(other).onnx if other else None), progress=not args.json)
    chosen, skipped = choose(cands, cfg)
    classes = labelling_classes()
    write_task(chosen, out, classes, cfg, model.name, extra={"compared_with": other, "since": args.since, "candidates": len(cands), "skipped": skipped})
    summary = {"task": str(out), "chosen": len(chosen), "candidates": len(cands), "skipped": skipped, "model": model.name, "compared_with": other}
    if args.json:
        print(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        print(f"{len(chosen)} of {len(cands)} frames chosen into {out} (model {model.name}, disagreement against {other or 'none'}); skipped: {skipped}")
        print(f"label them in the review page or export them (streetorder samples export --format ...); pseudo-labels are in {out}/labels")
    return 0


def cmd_experiment(args: argparse.Namespace) -> int:
    from .select_experiment import ExperimentConfig, run_experiment

    cfg = ExperimentConfig(**({"budget": args.budget} if args.budget else {}), **({"random_seeds": tuple(args.random_seeds)} if args.random_seeds else {}))
    report = run_experiment(cfg)
    if args.card:
        from .select_experiment import add_to_card

        add_to_card(report, Path(args.card))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        s = report["summary"]
        print(f"start model mAP50 {s['start_map50']}; + {cfg.budget} frames by select: {s['select_map50']}; at random: mean {s['random_map50_mean']} (range {s['random_map50_range']})")
        print(report["verdict"])
    return 0


# ---- retrain ------------------------------------------------------------------------------------------------
def cmd_retrain(args: argparse.Namespace) -> int:
    from .retrain import RetrainConfig, retrain

    fields = RetrainConfig.model_fields
    given = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    cfg = RetrainConfig(**given)
    # the command as parsed (not sys.argv): exact and the same however it was called
    command = "streetorder retrain " + shlex.join([x for k, v in given.items() for x in (("--no-variants",) if k == "variants" else (f"--{k.replace('_', '-')}", str(v)))])
    card = retrain(cfg, command)
    print(f"wrote {cfg.models_dir / card['name']} (from {card['parent']}; classes +{card['added_classes'] or 'none'}; {len(card['training']['data_versions']['sample_versions'])} sample version(s))")
    print(f"next: streetorder evaluate --candidate {card['name']} --report var/reports/{card['name']}   then   streetorder promote {card['name']}")
    return 0


def add_retrain_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", help="new version (default: the next street-vN)")
    p.add_argument("--models-dir", type=Path, default=Path("models"), help="models folder with CURRENT (default models)")
    p.add_argument("--samples-root", type=Path, help="sample versions (default $STREETORDER_SAMPLES or var/samples)")
    p.add_argument("--classes-file", type=Path, help="added classes (default datasets/classes.yaml)")
    p.add_argument("--shared-data", type=Path, default=SHARED_DATA, help="folder with garbage-cn/ and streets-in/ (default ../shared/data)")
    p.add_argument("--teacher", type=Path, default=SHARED / "models" / "yolo11n-coco.pt", help="COCO teacher weights for pseudo-labels")
    p.add_argument("--imgsz", type=int, help="training size (default: the current model's)")
    p.add_argument("--epochs", type=int, default=5, help="epochs (default 5)")
    p.add_argument("--batch", type=int, default=16, help="batch size (default 16)")
    p.add_argument("--limit", type=int, help="at most this many garbage-cn images per split (a quick loop)")
    p.add_argument("--teacher-imgsz", type=int, default=640, help="teacher input size (default 640)")
    p.add_argument("--workers", type=int, default=2, help="dataloader workers (default 2)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default all)")
    p.add_argument("--device", default="cpu", help="cpu or a CUDA index")
    p.add_argument("--workdir", type=Path, default=Path("var/train"), help="scratch folder (default var/train)")
    p.add_argument("--no-variants", dest="variants", action="store_false", default=None, help="skip building and gating the INT8 and bf16 variants (`streetorder models quantize`)")


# ---- evaluate --candidate, promote, rollback ----------------------------------------------------------------
def add_gate_args(p: argparse.ArgumentParser, prefix: str = "") -> None:
    from .benchmark import GateConfig

    d = GateConfig()
    p.add_argument("--class-tolerance", type=float, default=d.class_tolerance, help=f"{prefix}most AP50 one class may lose (default {d.class_tolerance})")
    p.add_argument("--map-tolerance", type=float, default=d.map_tolerance, help=f"{prefix}how much lower overall mAP50 may be (default {d.map_tolerance})")
    p.add_argument("--fp-tolerance", type=float, default=d.fp_tolerance, help=f"{prefix}extra false alarms per clean-street image allowed (default {d.fp_tolerance})")
    p.add_argument("--recent-days", type=float, default=d.recent_days, help=f"{prefix}reviewed cases this recent are scored (default {d.recent_days})")
    p.add_argument("--bench-limit", type=int, help=f"{prefix}score only the first N benchmark images (a quick look; the gate then says so)")
    p.add_argument("--samples-root", dest="gate_samples_root", type=Path, help=f"{prefix}sample versions whose holdout joins the benchmark")
    p.add_argument("--models-dir", dest="gate_models_dir", type=Path, help=f"{prefix}models folder with CURRENT (default models or $STREETORDER_MODELS)")


def _gate_config(args):
    from .benchmark import GateConfig

    return GateConfig(class_tolerance=args.class_tolerance, map_tolerance=args.map_tolerance, fp_tolerance=args.fp_tolerance, recent_days=args.recent_days)


def _store(args):
    """The ledger for the case-precision check; None when none is configured and the default one does not exist."""
    from ..config.settings import PipelineSettings

    env = PipelineSettings()
    if not (getattr(args, "ledger", None) or getattr(args, "db", None) or env.db or env.ledger_config):
        from ..cases.config import DEFAULT_DB_URL

        if not Path(DEFAULT_DB_URL.removeprefix("sqlite:///")).exists():
            return None
    from ..cases import CaseStore, LedgerConfig

    return CaseStore.open(LedgerConfig.load(args.ledger, database_url=args.db))


def evaluate_gate(args, candidate: str) -> tuple[dict, dict, object, object]:
    """Score `candidate` and the current model (or --against) on the benchmark; model names are looked up in
    --models-dir (default: `models_dir()`)."""
    from ..detect.registry import current_name
    from .benchmark import Benchmark, gate, score_model

    root = _gate_models_dir(args)
    against = getattr(args, "against", None) or current_name(root)
    cfg = _gate_config(args)
    bench = Benchmark.default(samples_root=args.gate_samples_root, limit=args.bench_limit)
    store = _store(args)
    try:
        cand = score_model(candidate, bench, store, cfg, threads=args.threads, models_root=root)
        cur = score_model(against, bench, store, cfg, threads=args.threads, models_root=root)
    finally:
        if store is not None:
            store.close()
    verdict = gate(cand, cur, cfg)
    if args.bench_limit:
        verdict.checks.append({"check": "benchmark_complete", "passed": False, "detail": f"only {args.bench_limit} benchmark images scored (--bench-limit): not a promotion benchmark"})
        verdict.promote = False
    return cand, cur, verdict, bench


def cmd_evaluate_candidate(args: argparse.Namespace) -> int:
    candidate = args.candidate or args.model
    if not candidate:
        raise SystemExit("streetorder evaluate --report needs --candidate NAME")
    cand, cur, verdict, bench = evaluate_gate(args, candidate)
    if args.report:
        from .report import write_report

        print(f"report: {write_report(Path(args.report), cand, cur, verdict)}")
    _print_verdict(args, cand, cur, verdict)
    return 0


def _print_verdict(args, cand, cur, verdict) -> None:
    if getattr(args, "json", False):
        strip = lambda s: {k: ({kk: vv for kk, vv in v.items() if kk not in ("pr_curves", "confusion")} if isinstance(v, dict) else v) for k, v in s.items()}
        print(json.dumps({"candidate": strip(cand), "current": strip(cur), "verdict": verdict.as_dict()}, indent=2, ensure_ascii=False))
        return
    print(f"{cand['model']} vs {cur['model']} on {cand['benchmark']['name']} ({cand['benchmark']['key']}): overall mAP50 {cand['garbage_cn'].get('map50')} vs {cur['garbage_cn'].get('map50')}")
    for c in verdict.checks:
        print(f"  {'ok  ' if c['passed'] else 'FAIL'} {c['check']}: {c['detail']}")
    print("verdict: " + ("promote" if verdict.promote else "do not promote"))


def _gate_models_dir(args) -> Path:
    """The models folder the gate and `promote` work in: --models-dir, else `models_dir()`."""
    from ..detect.registry import models_dir

    return args.gate_models_dir or models_dir()


def cmd_promote(args: argparse.Namespace) -> int:
    from .promote import PromotionError, record_promotion

    cand, cur, verdict, bench = evaluate_gate(args, args.name)
    _print_verdict(args, cand, cur, verdict)
    if not verdict.promote and not args.force:
        print(f"refused: {args.name} stays a candidate; {cur['model']} keeps serving. Why: " + "; ".join(verdict.reasons), file=sys.stderr)
        return 3
    root = _gate_models_dir(args)
    try:
        record_promotion(args.name, verdict.as_dict() | {"against": cur["model"], "benchmark": bench.describe()}, root, forced=not verdict.promote)
    except PromotionError as e:
        print(f"refused: {e}", file=sys.stderr)
        return 3
    _card_gate(root / args.name, cur["model"], bench.describe(), verdict.as_dict())
    print(f"promoted {args.name} (was {cur['model']}); {root / 'CURRENT'} now names it; a running service follows within seconds" + (" (FORCED past the gate)" if not verdict.promote else ""))
    return 0


def _card_gate(folder: Path, against: str, bench: dict, verdict: dict) -> None:
    path = folder / "card.json"
    if not path.exists():
        return
    card = json.loads(path.read_text(encoding="utf-8"))
    card["gate"] = {"against": against, "benchmark": bench, "verdict": verdict}
    path.write_text(json.dumps(card, indent=2, ensure_ascii=False))
    if "parent" in card:
        from .retrain import render_retrained

        (folder / "README.md").write_text(render_retrained(card))


def cmd_rollback(args: argparse.Namespace) -> int:
    from ..detect.registry import models_dir
    from .promote import PromotionError, rollback

    try:
        old, new = rollback(args.models_dir or models_dir())
    except PromotionError as e:
        print(f"streetorder rollback: {e}", file=sys.stderr)
        return 3
    print(f"rolled back: {new} serves again (was {old}); a running service follows within seconds")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("retrain", help="fine-tune the current model on base data + every sample version (train extra)", description="Fine-tune models/CURRENT on the base data plus all sample versions under the samples root, with classes from datasets/classes.yaml appended to its head; writes models/<name>/ with the exact command and data versions in its card. Then: evaluate --candidate, promote.")
    add_retrain_args(p)
    p.set_defaults(func=cmd_retrain)

    p = sub.add_parser("promote", help="make a candidate model current, only if it passes the gate", description="Score the candidate and the current model on the fixed benchmark and promote only if overall mAP50 is not lower, no class regresses beyond the tolerance, case-level precision on recently reviewed cases does not drop and false alarms on clean streets do not rise. Moves models/CURRENT and records the history; the service follows without a restart.")
    p.add_argument("name", help="candidate model folder under models/")
    p.add_argument("--force", action="store_true", help="promote even if the gate refuses (recorded as forced)")
    p.add_argument("--threads", type=int, help="inference threads")
    p.add_argument("--json", action="store_true", help="print the scores and the verdict as JSON")
    add_gate_args(p)
    add_ledger_args(p)
    p.set_defaults(func=cmd_promote)

    p = sub.add_parser("rollback", help="go back to the previously promoted model", description="Make the model promoted before the current one current again (models/HISTORY.json); the service follows without a restart.")
    p.add_argument("--models-dir", type=Path, help="models folder (default models or $STREETORDER_MODELS)")
    p.set_defaults(func=cmd_rollback)

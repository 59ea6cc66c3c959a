"""`streetorder models quantize NAME`: build a model's INT8 variant, gate it and bf16, record both in its card."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..paths import SHARED


def cmd_models(args: argparse.Namespace) -> int:
    from ..samples.frame_pool import FramePool
    from .gate_sets import GateSets
    from .quantize import quantize_model

    if args.timing_only:
        from .quantize import retime_model

        record = retime_model(args.name, shared=args.shared, threads=args.threads, write=not args.dry_run)
        t = record["timing"]
        print(json.dumps(record, indent=2) if args.json else f"ms per image: {json.dumps(t['ms_per_image'])} on {t['cpu']}, load average {t['load_average']}")
        return 0
    if args.gate_only:
        from .quantize import regate_model

        record = regate_model(args.name, sets=GateSets(args.shared, args.limit), threads=args.threads, progress=not args.json, write=not args.dry_run)
        if args.json:
            print(json.dumps(record, indent=2))
            return 0
        for name, entry in record.items():
            for again in ((entry.get("gate") or {}).get("also_on") or []) if isinstance(entry, dict) else []:
                print(f"{name} on {again['cpu']}: " + ("accepted" if again["accepted"] else "REFUSED: " + "; ".join(again["failed"])))
        return 0
    pool = FramePool.from_env()
    record = quantize_model(
        args.name, shared=args.shared, calibration=args.calibration, sets=GateSets(args.shared, args.limit), pool=pool.cfg.root if pool else None,
        threads=args.threads, progress=not args.json, write=not args.dry_run, keep_float=args.keep_float,
    )
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        for name, entry in record.items():
            gate = entry.get("gate") if isinstance(entry, dict) else None
            if isinstance(entry, dict) and "gate" in entry:
                verdict = "not gated: " + entry.get("not_gated", "") if gate is None else ("accepted" if gate["accepted"] else "REFUSED: " + "; ".join(gate["failed"]))
                print(f"{name}: {verdict}")
        print("ms per image:", json.dumps(record["timing"]["ms_per_image"]), "load average", record["timing"]["load_average"])
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="a model's reduced-precision variants (train extra)", description="Work on the files of a model under models/.")
    actions = p.add_subparsers(dest="models_action", required=True, metavar="ACTION")
    q = actions.add_parser(
        "quantize", help="build the INT8 variant, gate its variants and bf16, record them in the card",
        description="Build models/NAME/model.int8.xml (NNCF post-training INT8, calibrated on real street frames, the head's class branch and box decoding in float), "
        "then gate it (its float layers in f32, and in bf16 where the CPU has it) and the bf16 variant against f32 (mAP on garbage-cn val, cue-class recall, two-wheeler recall and precision on the streets-in holdout) through "
        "the serving backends, time them, and write the verdicts into card.json and README.md, where `--backend auto` reads them.",
    )
    q.add_argument("name", help="model name under models/, or a model folder")
    q.add_argument("--shared", type=Path, default=SHARED, help="the shared data folder (default ../shared)")
    q.add_argument("--calibration", type=int, default=300, help="calibration images (default 300)")
    q.add_argument("--limit", type=int, help="gate on only the first N images of each set (a quick look; the card's numbers should come from the full sets)")
    q.add_argument("--threads", type=int, help="inference threads")
    q.add_argument("--keep-float", choices=["classes-and-decode", "head", "decode", "none"], default="classes-and-decode", help="INT8: what of the Detect head stays float: all but its box branches' 3x3 convolutions (default), all of it, only its box decoding, or nothing (a degraded model)")
    q.add_argument("--timing-only", action="store_true", help="only time the variants already built and gated again, and replace the card's timing (files and verdicts stay)")
    q.add_argument("--gate-only", action="store_true", help="only gate the variants already built again, on this CPU (its kernels may differ from the one that built them), "
                   "and add its verdicts to the card: a variant refused on any CPU it was gated on is refused")
    q.add_argument("--dry-run", action="store_true", help="build and gate, but leave card.json and README.md as they are")
    q.add_argument("--json", action="store_true", help="print the record as JSON")
    q.set_defaults(func=cmd_models)

"""`streetorder train`: build → fit → export → measure → card, each stage re-runnable on its own."""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

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

"""Options every area's sub-commands share, so that a flag means the same in every command."""

from __future__ import annotations

import argparse

BACKEND_HELP = "auto (default): the fastest on this machine of onnx, openvino (when it agrees with onnx) and the INT8/bf16 variants the accuracy gate accepted (card.json), chosen once and cached; onnx (onnxruntime), openvino, openvino-bf16, openvino-int8, openvino-int8-bf16 (a variant, accepted or not), or ultralytics (the .pt; needs the train extra)"


def add_backend_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=["auto", "onnx", "openvino", "openvino-bf16", "openvino-int8", "openvino-int8-bf16", "ultralytics"], default="auto", help=BACKEND_HELP)


def add_detector_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="model name under models/, a model folder, or an .onnx/.pt file (default: models/CURRENT)")
    p.add_argument("--conf", type=float, default=0.25, help="minimum score (default 0.25)")
    p.add_argument("--iou", type=float, default=0.7, help="NMS IoU threshold (default 0.7)")
    p.add_argument("--imgsz", type=int, help="inference size in pixels (default: the model's own)")
    p.add_argument("--classes", help="comma-separated class names to keep, e.g. garbage,overflow")
    p.add_argument("--threads", type=int, help="inference threads (default: all cores)")


def detector_settings(args: argparse.Namespace):
    from .detect import DetectorSettings

    classes = tuple(c.strip() for c in args.classes.split(",") if c.strip()) if args.classes else None
    return DetectorSettings(conf=args.conf, iou=args.iou, imgsz=args.imgsz, classes=classes)


def tiles_arg(text: str) -> tuple[int, int]:
    cols, sep, rows = text.lower().partition("x")
    if not sep or not cols.isdigit() or not rows.isdigit() or not (1 <= int(cols) <= 6 and 1 <= int(rows) <= 6) or (int(cols), int(rows)) == (1, 1):
        raise argparse.ArgumentTypeError(f"'{text}' is not a tile grid; use COLSxROWS, 1..6 each and at least 2 tiles, e.g. 2x2")
    return int(cols), int(rows)


def overlap_arg(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not 0.0 <= v <= 0.5:
        raise argparse.ArgumentTypeError(f"overlap must be between 0 and 0.5 (a share of the tile), got {v}")
    return v


def add_slice_args(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--tiles", type=tiles_arg, default=(2, 2), metavar="COLSxROWS", help=f"{what}tile grid (default 2x2)")
    p.add_argument("--overlap", type=overlap_arg, default=0.2, help=f"{what}share of a tile shared with its neighbour (default 0.2)")

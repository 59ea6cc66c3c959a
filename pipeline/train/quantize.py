"""Build a model's reduced-precision variants, gate them, and record both in its card: `streetorder models
quantize NAME` (and `retrain`, for every model it trains).

- INT8 (`model.int8.xml` + `.bin`): NNCF post-training quantization of the OpenVINO model converted from `model.onnx`,
  calibrated on real street frames (garbage-cn train, streets-in outside its holdout, the frame pool), preset MIXED
  (symmetric weights, asymmetric activations), with the Detect head in float but for its box branches' 3x3
  convolutions, and every Sigmoid in float. The model is converted (`ov.convert_model`, as `ovc` does), so each
  SiLU is one Swish op fused into its convolution. Keeping only the box decoding in float (`keep_float="decode"`,
  ultralytics' INT8 export) cost street-v2 0.029 mAP50-95 on garbage-cn val, which the gate refuses; quantizing
  the class branch too, 0.030; the box branches' 3x3 convolutions alone, 0.001. `keep_float="none"` quantizes
  everything (the test's degraded variant). The IR serves as two variants:
  `openvino-int8` (the float layers in f32) and `openvino-int8-bf16` (in bf16, where the CPU has it).
- bf16: no file, `model.onnx` with OpenVINO's bf16 precision hint; only gated here.

Build time needs NNCF (train extra); serving reads the IR with OpenVINO alone.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..detect import DetectorSettings, load_detector, resolve_model
from ..detect.letterbox import letterbox
from ..detect.openvino import IR_METADATA
from ..detect.exported import read_onnx_metadata
from ..detect.variants import VARIANTS, cpu_capabilities, cpu_name, gate_record, variant_file, verdict
from ..formats.yolo import list_images
from ..paths import SHARED, STREETS_SPLIT
from ..source.images import load_image
from .gate import gate_variants
from .gate_sets import GateSets

CALIBRATION_IMAGES = 300
HEAD = "model.23"  # the Detect head's module in an ultralytics YOLO11 export


def calibration_images(shared: Path = SHARED, n: int = CALIBRATION_IMAGES, pool: Path | None = None, seed: int = 0) -> list[Path]:
    """Real street frames for calibration, never the gate's images: two thirds garbage-cn train, the rest
    streets-in outside the holdout and the frame pool (when it holds frames), drawn with a fixed seed."""
    from .dataset import Sources

    data = Path(shared) / "data"
    sources = Sources(data / "garbage-cn", data / "streets-in", STREETS_SPLIT)
    excluded, holdout = sources.streets_split_lists()
    streets = [p for p in list_images(data / "streets-in" / "images") if p.name not in holdout and p.name not in excluded]
    pooled = list_images(pool) if pool is not None and Path(pool).is_dir() else []
    garbage = list_images(data / "garbage-cn" / "train" / "images")
    rng = random.Random(seed)
    others = rng.sample(streets + pooled, min(len(streets) + len(pooled), n // 3))
    return rng.sample(garbage, min(len(garbage), n - len(others))) + others


def input_tensor(path_or_image, imgsz: int) -> np.ndarray:
    """An image as the exported model's input (as `ExportedDetector.prepare`): letterboxed, RGB, NCHW in [0, 1]."""
    image = load_image(path_or_image) if isinstance(path_or_image, (str, Path)) else path_or_image
    boxed, _ = letterbox(image, imgsz)
    return np.ascontiguousarray(boxed[:, :, ::-1].transpose(2, 0, 1)[None], dtype=np.float32) / np.float32(255.0)


KEEP_FLOAT = ("classes-and-decode", "head", "decode", "none")
BOX_STEMS = r"cv2\.\d+/cv2\.\d+\.[01]/"  # each box branch's two 3x3 convolutions (`Detect.cv2[i][0:2]`)


def build_int8(folder: Path, images: Sequence[Path | np.ndarray], keep_float: str = "classes-and-decode", out: Path | None = None) -> Path:
    """Quantize `folder/model.onnx` to INT8 with NNCF on `images`; write `model.int8.xml` (or `out`) and its
    `.bin`, carrying the ONNX export's metadata (names, imgsz) in the IR. `keep_float`, what of the Detect head
    stays float: 'classes-and-decode' (all of it but the box branches' 3x3 convolutions, a tenth of the model's
    time at P3; quantizing the class branch too cost street-v2 0.030 mAP50-95), 'head' (all of it), 'decode'
    (only the box decoding and the Sigmoids, as ultralytics' INT8 export does), 'none' (nothing: a degraded
    model, for the gate's test)."""
    if keep_float not in KEEP_FLOAT:
        raise ValueError(f"keep_float must be one of {KEEP_FLOAT}, got {keep_float!r}")
    import logging

    import nncf
    import openvino as ov

    nncf.set_log_level(logging.WARNING)  # its INFO lines (one per node left in float) go to stdout
    folder = Path(folder)
    onnx = folder / "model.onnx"
    meta = read_onnx_metadata(onnx)
    imgsz = int(ast.literal_eval(meta["imgsz"])[0]) if "imgsz" in meta else 640
    # converted, not read: the converter's fusions make each x*sigmoid(x) one Swish op, so NNCF's quantizers sit
    # where the CPU plugin fuses Swish and the requantization into the INT8 convolution (read raw, each SiLU and
    # its quantizer ran as a kernel of its own: 2.5 of 9.8 ms, and INT8 was no faster than bf16)
    model = ov.convert_model(str(onnx))
    data = nncf.Dataset([input_tensor(im, imgsz) for im in images])
    ignored = None
    if keep_float == "decode":
        ignored = nncf.IgnoredScope(
            patterns=[f".*{HEAD}/.*/Add", f".*{HEAD}/.*/Sub.*", f".*{HEAD}/.*/Mul.*", f".*{HEAD}/.*/Div.*", f".*{HEAD}/dfl.*"], types=["Sigmoid"], validate=False,
        )
    elif keep_float == "head":
        ignored = nncf.IgnoredScope(patterns=[f".*/{HEAD}/.*"], types=["Sigmoid"], validate=False)
    elif keep_float == "classes-and-decode":
        ignored = nncf.IgnoredScope(patterns=[f".*/{HEAD}/(?!{BOX_STEMS}).*"], types=["Sigmoid"], validate=False)
    with contextlib.redirect_stdout(sys.stderr):  # NNCF's progress bars: stdout is the command's JSON
        quantized = nncf.quantize(model, data, preset=nncf.QuantizationPreset.MIXED, ignored_scope=ignored, subset_size=len(images))
    for key, value in meta.items():
        quantized.set_rt_info(value, [IR_METADATA, key])
    out = out or variant_file(folder, "openvino-int8")
    ov.save_model(quantized, str(out), compress_to_fp16=False)
    return out


def time_variants(folder: Path, backends: Sequence[str], images: Sequence[Path], rounds: int = 3, threads: int | None = None) -> dict:
    """Median ms per image at batch 1, the backends interleaved image by image (noise hits all alike)."""
    dets = {b: load_detector(str(folder), backend=b, settings=DetectorSettings(conf=0.25), threads=threads) for b in backends}
    imgs = [load_image(p) for p in images]
    for d in dets.values():
        d.detect(imgs[:1])
    times: dict[str, list[float]] = {b: [] for b in dets}
    for _ in range(rounds):
        for im in imgs:
            for b, d in dets.items():
                t = time.perf_counter()
                d.detect([im])
                times[b].append(time.perf_counter() - t)
    ms = {b: round(statistics.median(v) * 1000, 1) for b, v in times.items()}
    return {"ms_per_image": ms, "vs_onnx": {b: round(v / ms["onnx"], 2) for b, v in ms.items()}, "images": len(imgs), "rounds": rounds,
            "threads": threads or "all cores", "cpu": cpu_name(), "load_average": [round(x, 2) for x in os.getloadavg()]}


def retime_model(model: str | Path, shared: Path = SHARED, threads: int | None = None, write: bool = True) -> dict:
    """Time a model's built variants again and (with `write`) replace only the card's `variants.timing`: the files
    and the gate's verdicts stay as they are. For figures from a quiet machine, or from the CPU a city runs."""
    ref = resolve_model(model)
    if ref.onnx is None:
        raise FileNotFoundError(f"model '{ref.name}' has no model.onnx")
    folder = ref.onnx.parent
    record = dict(ref.card.get("variants") or {})
    if not record:
        raise ValueError(f"model '{ref.name}' has no variants in its card yet: run `streetorder models quantize {ref.name}` first")
    variants = [v for v in VARIANTS if not VARIANTS[v].missing() and variant_file(folder, v).is_file()]
    record["timing"] = time_variants(folder, ["onnx", "openvino", *variants], GateSets(shared).garbage_val()[:10], threads=threads)
    if write:
        write_variants(folder, record)
    return record


def regate_model(model: str | Path, sets: GateSets | None = None, threads: int | None = None, progress: bool = False, write: bool = True) -> dict:
    """Gate a model's built variants again on this CPU, the files as they are, and (with `write`) add its verdicts
    to the card: each gated variant's `gate.also_on` lists the further CPUs it was gated on, with their verdicts
    (`variants.verdict`: refused on any, refused). OpenVINO's kernels differ per CPU (AMX, AVX512-VNNI, AVX2), so
    the machines a city serves on can check what they will serve."""
    ref = resolve_model(model)
    if ref.onnx is None:
        raise FileNotFoundError(f"model '{ref.name}' has no model.onnx")
    folder = ref.onnx.parent
    record = dict(ref.card.get("variants") or {})
    if not record:
        raise ValueError(f"model '{ref.name}' has no variants in its card yet: run `streetorder models quantize {ref.name}` first")
    variants = [v for v in VARIANTS if not VARIANTS[v].missing() and variant_file(folder, v).is_file() and gate_record(ref.card, v)]
    cpu = cpu_name()
    for v, g in gate_variants(str(folder), variants, sets or GateSets(), threads=threads, progress=progress).items():
        gate = dict(record[v]["gate"])
        here = {"cpu": cpu, "accepted": g["accepted"], "failed": g["failed"], "checks": g["checks"], "sets": g["sets"]}
        gate["also_on"] = [x for x in gate.get("also_on") or [] if x.get("cpu") != cpu] + [here]
        record[v] = {**record[v], "gate": gate}
    if write:
        write_variants(folder, record)
    return record


LETTERBOX = "the smallest stride-32 rectangle holding each image (DetectorSettings.rect)"


def quantize_model(
    model: str | Path, shared: Path = SHARED, calibration: int = CALIBRATION_IMAGES, sets: GateSets | None = None, pool: Path | None = None,
    threads: int | None = None, progress: bool = False, write: bool = True, keep_float: str = "classes-and-decode",
) -> dict:
    """Build the INT8 variant of `model`, gate it and bf16 (where this CPU has it), time them, and (with `write`)
    record it all in the model's card.json and README.md under `variants`. Returns that record."""
    ref = resolve_model(model)
    if ref.onnx is None:
        raise FileNotFoundError(f"model '{ref.name}' has no model.onnx to quantize")
    folder = ref.onnx.parent
    sets = sets or GateSets(shared)
    calib = calibration_images(shared, calibration, pool)
    started = time.perf_counter()
    build_int8(folder, calib, keep_float=keep_float)
    built_s = round(time.perf_counter() - started, 1)
    variants = [v for v in VARIANTS if not VARIANTS[v].missing()]
    gates = gate_variants(str(folder), variants, sets, threads=threads, progress=progress)
    timing = time_variants(folder, ["onnx", "openvino", *variants], sets.garbage_val()[:10], threads=threads)
    record: dict = {
        "reference": "f32 model.onnx on onnxruntime",
        "letterbox": LETTERBOX,
        "cpu_capabilities": list(cpu_capabilities()),
        "timing": timing,
    }
    for v in VARIANTS:
        entry: dict = {"file": VARIANTS[v].file, "precision": VARIANTS[v].precision}
        if v == "openvino-int8":
            files = [variant_file(folder, v), variant_file(folder, v).with_suffix(".bin")]
            entry |= {"bytes": sum(f.stat().st_size for f in files), "calibration": {"images": len(calib), "from": "garbage-cn train, streets-in outside the holdout, the frame pool",
                      "tool": f"NNCF post-training quantization (OpenVINO), preset MIXED, kept in float: {keep_float} (and every Sigmoid)", "seconds": built_s}}
        if v in gates:
            entry["gate"] = gates[v]
        else:
            entry["gate"] = None
            entry["not_gated"] = f"this CPU lacks {' and '.join(VARIANTS[v].missing())}"
        record[v] = entry
    if write:
        write_variants(folder, record)
    return record


def write_variants(folder: Path, record: dict) -> None:
    """`record` as card.json's `variants`, and the README's variants section re-rendered."""
    card_path = folder / "card.json"
    card = json.loads(card_path.read_text(encoding="utf-8")) if card_path.is_file() else {"name": folder.name}
    card["variants"] = record
    card_path.write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    readme = folder / "README.md"
    text = readme.read_text(encoding="utf-8") if readme.is_file() else f"# {folder.name}\n"
    readme.write_text(replace_section(text, variants_markdown(card)), encoding="utf-8")


START, END = "<!-- variants: written by `streetorder models quantize` -->", "<!-- /variants -->"


def replace_section(text: str, section: str) -> str:
    """`text` with its variants section replaced (or appended)."""
    if START in text and END in text:
        head, rest = text.split(START, 1)
        return head + section + rest.split(END, 1)[1]
    return text.rstrip("\n") + "\n\n" + section + "\n"


def _numbers(checks: dict) -> str:
    """A verdict's figures in a line: mAP (where the model has garbage classes), cue recall, two-wheelers."""
    out = [f"mAP50 {checks['map50']['variant']}, mAP50-95 {checks['map50_95']['variant']}"] if checks["map50"]["f32"] is not None else []
    out.append(f"cue recall {checks['cue_recall']['recall']}")
    if tw := checks.get("two_wheelers"):
        out.append(f"two-wheeler R / P {tw['variant']['recall']} / {tw['variant']['precision']}")
    return ", ".join(out)


def variants_markdown(card: dict) -> str:
    """The README section for a card's `variants`: each variant's gate numbers and speed."""
    rec = card.get("variants") or {}
    if not rec:
        return ""
    t = rec.get("timing", {})
    lines = [START, "## Variants (INT8, bf16) and the accuracy gate", "",
             "Built and gated by `streetorder models quantize " + str(card.get("name", "NAME")) + "`. `--backend auto` serves the fastest accepted one on each machine (`STREETORDER_AUTO_VARIANTS=false`: f32 only); any can be asked for by name. "
             f"Accepted when mAP50 and mAP50-95 on garbage-cn val drop at most 0.005 against f32 (onnxruntime), cue-class recall against f32 is at least 0.98, "
             f"and two-wheeler recall and precision on the streets-in holdout move at most 0.01.", "",
             "| variant | file | accepted | mAP50 (f32) | mAP50-95 (f32) | cue recall | two-wheeler R / P (f32) | ms per image | vs onnx f32 |",
             "|---|---|---|---|---|---|---|---|---|"]
    ms, ratio = t.get("ms_per_image", {}), t.get("vs_onnx", {})
    again: list[str] = []  # verdicts from further CPUs (`models quantize --gate-only`)
    for b in ("onnx", "openvino"):
        if b in ms:
            lines.append(f"| {b} f32 | model.onnx | reference | | | | | {ms[b]} | {ratio.get(b)} |")
    for v in VARIANTS:
        e = rec.get(v)
        if not e:
            continue
        g = e.get("gate")
        if not g:
            lines.append(f"| {v} | {e['file']} | not gated ({e.get('not_gated', '')}) | | | | | | |")
            continue
        c = g["checks"]
        tw = c.get("two_wheelers")
        tw_txt = f"{tw['variant']['recall']} / {tw['variant']['precision']} ({tw['f32']['recall']} / {tw['f32']['precision']})" if tw else "–"
        m50 = f"{c['map50']['variant']} ({c['map50']['f32']})" if c["map50"]["f32"] is not None else "n/a (no garbage classes)"
        m95 = f"{c['map50_95']['variant']} ({c['map50_95']['f32']})" if c["map50_95"]["f32"] is not None else "n/a"
        if tw and tw.get("passed") is None:
            tw_txt += " (recorded; the cue model serves two-wheelers)"
        accepted, failed = verdict(g)
        lines.append(
            f"| {v} | {e['file']} | {'yes' if accepted else 'NO: ' + '; '.join(failed)} | {m50} | {m95} | {c['cue_recall']['recall']} | {tw_txt} | {ms.get(v, '–')} | {ratio.get(v, '–')} |"
        )
        again += [f"{v} on {x['cpu']}: {'accepted' if x['accepted'] else 'refused (' + '; '.join(x['failed']) + ')'}, {_numbers(x['checks'])}" for x in g.get("also_on") or []]
    lines += ["", f"Timing: median of {t.get('images')} garbage-cn val images x {t.get('rounds')} rounds, batch 1, interleaved, threads {t.get('threads')}, "
              f"{'on ' + t['cpu'] + ', ' if t.get('cpu') else ''}load average {t.get('load_average')} while measured (2 shared cores: read the ratios, not the milliseconds)."]
    if rec.get("letterbox"):
        lines.append(f"Gated with the input as served: {rec['letterbox']}.")
    if again:
        lines += ["", "Gated again on other CPUs (`streetorder models quantize NAME --gate-only`; a variant refused on any is refused):", ""]
        lines += [f"- {line}" for line in again]
    lines.append(END)
    return "\n".join(lines)

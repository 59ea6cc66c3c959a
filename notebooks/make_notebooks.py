"""Writes the walk-through notebooks from the cells below (run from the repo root; keeps them diff-friendly)."""

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent


def nb(cells, name):
    """A notebook of (kind, source) cells; each cell's id is `name-NN`, its place, so a rewrite keeps the ids."""
    return {
        "cells": [
            {"cell_type": kind, "id": f"{name}-{i:02d}", "metadata": {}, "source": src.strip("\n").splitlines(keepends=True), **({"outputs": [], "execution_count": None} if kind == "code" else {})}
            for i, (kind, src) in enumerate(cells)
        ],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}, "language_info": {"name": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


MODEL = [
    ("markdown", """
# 1. The model and the engine

Run from the repo root with the project's `.venv` (`.venv/bin/python -m jupyter lab`, or paste the cells into
`.venv/bin/python`). Everything here runs on the CPU with the shipped ONNX model: no torch.
"""),
    ("code", """
import os, sys
from pathlib import Path
os.chdir(Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd())
from pipeline.detect import load_detector, resolve_model, DetectorSettings, detections_to_records
ref = resolve_model()
print(ref.name, ref.card["classes"])
"""),
    ("markdown", "## Detect on a patrol photo\nBoxes are in the photo's own pixels; classes come from the model's metadata."),
    ("code", """
from pipeline.source.images import load_image
detector = load_detector(settings=DetectorSettings(conf=0.3))
photo = load_image("datasets/samples/footage/patrol/patrol_01.jpg")
[d] = detector.detect([photo])
detections_to_records(d)
"""),
    ("markdown", "## mAP on garbage-cn val, by day and by (simulated) night\nThe same numbers as the model card (`streetorder evaluate`)."),
    ("code", """
from pipeline.train.evaluate import evaluate_model
day = evaluate_model("../shared/data/garbage-cn/data.yaml")
night = evaluate_model("../shared/data/garbage-cn/data.yaml", night=True)
{c: (day["per_class"][c]["map50"], night["per_class"][c]["map50"]) for c in day["per_class"]}
"""),
    ("markdown", "## A scenario: a garbage pile from 60 s to 600 s, with 30% of frames dropped\nThe engine is driven by frame time, so this replays 15 minutes in seconds."),
    ("code", """
from pipeline.bench.scenarios import load_scenarios, run_scenario
scenario = next(s for s in load_scenarios() if s.name == "garbage-pile")
[result] = run_scenario(scenario, detector, dropouts=(0.3,), evidence_dir=Path("var/notebook-evidence"))
result.incidents
"""),
    ("code", """
import cv2, matplotlib.pyplot as plt
context = sorted(Path("var/notebook-evidence").rglob("context-*.jpg"))[-1]
plt.figure(figsize=(8, 8)); plt.imshow(cv2.imread(str(context))[..., ::-1]); plt.axis("off");
"""),
]

LEDGER = [
    ("markdown", """
# 2. From footage to the ledger, and back to the model

The night job, the cases it makes, a reviewer's decisions, and the monthly report. It uses a scratch SQLite
ledger under `var/notebook/` (evidence goes to the default content-addressed store, `var/evidence/`).
"""),
    ("code", """
import os, subprocess, json
from pathlib import Path
os.chdir(Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd())
db = "sqlite:///var/notebook/ledger.db"
Path("var/notebook").mkdir(parents=True, exist_ok=True)
out = subprocess.run([".venv/bin/streetorder", "run", "--db", db, "--json"], capture_output=True, text=True)
json.loads(out.stdout)
"""),
    ("code", """
from pipeline.cases import CaseStore, LedgerConfig
store = CaseStore.open(LedgerConfig(database_url=db, evidence_dir=Path("var/evidence")))  # where `run` put it
[(c.id, c.type, c.status, c.location.point, c.first_seen) for c in store.list()]
"""),
    ("markdown", "## The workflow: dispatch to the point owner, rectify, verify, close\nAn invalid move is refused with the allowed ones named."),
    ("code", """
case = store.list()[0]
store.transition(case.id, "dispatched", actor="district office")
store.transition(case.id, "rectified", actor="张伟", note="cleared by the sanitation team")
store.transition(case.id, "verified", actor="inspector")
store.transition(case.id, "closed", actor="inspector")
try:
    store.transition(case.id, "dispatched", actor="someone")
except Exception as e:
    print(type(e).__name__, e)
[(e.from_status, e.to_status, e.actor) for e in store.get(case.id).history]
"""),
    ("markdown", """
## A false alarm becomes a fixture and a training sample
Rejecting a case at a fixed spot (from the review page of `streetorder serve`, or here) can add that spot as a
fixture, so the same post or bin does not come back every night; rejected cases keep their evidence for
retraining.
"""),
    ("code", """
from pipeline.config import Fixture
from pipeline.config.load import add_fixture
others = [c for c in store.list() if c.status == "detected"]
if others:
    c = others[0]
    store.transition(c.id, "rejected", actor="annotator", note="bollard, not garbage")
    if c.camera_id and c.box:
        add_fixture(Path("var/notebook/fixtures.yaml"), c.camera_id, Fixture(id=f"case-{c.id}", box=tuple(c.box), reason=f"rejected case {c.id}"))
[(c.id, c.status) for c in store.list(status="rejected")]
"""),
    ("code", """
subprocess.run([".venv/bin/streetorder", "report", "--db", db, "--month", "2026-11", "--out", "var/notebook/report"], check=True)
sorted(p.name for p in Path("var/notebook/report").iterdir())
"""),
]

LOOP = [
    ("markdown", """
# 3. The retraining loop: review, select, label, retrain, gate, promote, roll back

One full loop on the sample data with tiny settings (64 px, one epoch, a few images), so it runs on a laptop CPU
in minutes. The models live in a scratch copy (`var/notebook3/models`), so the repository's `models/CURRENT` is
never touched. Training needs the `train` extra. The model this makes is *meant* to be bad: the gate refuses it.
"""),
    ("code", """
import os, sys, json, shutil, subprocess
from pathlib import Path
os.chdir(Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd())
W = Path("var/notebook3")
shutil.rmtree(W, ignore_errors=True)
for name in ("street-v1", "street-v2", "yolo11n-coco"):
    shutil.copytree(Path("models") / name, W / "models" / name)
(W / "models" / "CURRENT").write_text("street-v2\\n")
os.environ |= {"STREETORDER_MODELS": str(W / "models"), "STREETORDER_SAMPLES": str(W / "samples"), "STREETORDER_FRAME_POOL": str(W / "frames"), "YOLO_OFFLINE": "1"}
SO = [str(Path(sys.executable).parent / "streetorder")]
db = f"sqlite:///{W}/ledger.db"
def so(*args, check=True):
    out = subprocess.run(SO + list(args), capture_output=True, text=True)
    print(out.stdout[-3000:], out.stderr[-1500:] if out.returncode else "")
    if check and out.returncode:
        raise RuntimeError(f"streetorder {args[0]} exited {out.returncode}")
    return out.returncode
"""),
    ("markdown", """
## The night job fills the frame pool
Besides cases, every camera frame (one per 30 s of video per camera, downscaled and blurred) and its detections go to a bounded pool that `samples select` reads.
"""),
    ("code", """
so("run", "--db", db, "--json")
frames = sorted((W / "frames").glob("*.jpg"))
len(frames), json.loads(frames[0].with_suffix(".json").read_text())["detections"][:2]
"""),
    ("markdown", """
## Review: confirm one case, reject another
What the review page's Dispatch and Reject buttons do (`pipeline/review/decisions.py`: one code path for the page, the API and the CLI); each decision is logged with the reviewer in the ledger's `annotations` table.
"""),
    ("code", """
from pipeline.review import decisions
from pipeline.cases import CaseStore, LedgerConfig
store = CaseStore.open(LedgerConfig.load(None, database_url=db))  # the ledger and evidence store the night job wrote
cases = [c for c in store.list() if c.source == "camera"] + [c for c in store.list() if c.source != "camera"]
decisions.dispatch(store, cases[0].id, actor="王审核", owner="张伟", source="notebook")
# the stall case is rejected: a class neither street model knows yet, so the gate's reviewed-case check below
# compares the two models on the confirmed case alone, whatever their scores on the others
stall = next((c for c in cases if c.type == "street_vending"), None)
if stall is not None:
    decisions.reject(store, stall.id, actor="王审核", reason="a delivery cart unloading, not a stall", source="notebook")
[(c.id, c.type, c.status) for c in store.list()]
"""),
    ("markdown", """
## What to label next
Uncertain detections, disagreement with the previous model, novelty against the training set; near-duplicates from static cameras dropped; per-camera and per-class quotas.
"""),
    ("code", """
so("samples", "select", "--budget", "6", "--compare-with", "street-v1", "--out", str(W / "task"))
task = json.loads((W / "task" / "manifest.json").read_text())
[(i["image"], i["camera"], i["reason"], i["score"], i["pseudo_boxes"]) for i in task["items"]], task["skipped"]
"""),
    ("markdown", """
## Fix the boxes, add a new class
`datasets/classes.yaml` already lists `stall`, `cart`, `tricycle`, `trash_bag`, `shared_bike`: the labelling list is the model's 12 classes plus those, appended. In the review page's box editor (`/review/{id}/label`) a reviewer drags a new box and presses a class key; here the same save, through the annotation log (a new row, never an update).
"""),
    ("code", """
from pipeline.cases.annotations import Annotations, LabelBox
from pipeline.cases.case_frames import case_frame
from pipeline.samples.labels import current_labels
from pipeline.samples.classes import labelling_classes
names = labelling_classes()
frame = case_frame(store, store.get(cases[0].id))
now = current_labels(Annotations(store.db), frame)  # the model's boxes on the case's frame, as the editor shows them
w, h = frame.width, frame.height
stall = LabelBox(class_name="stall", box=(0.35 * w, 0.45 * h, 0.65 * w, 0.75 * h), origin="drawn")
saved = Annotations(store.db).save(frame.case_id, action="boxes", reviewer="王审核", source="notebook", frame_sha256=frame.frame_sha256,
                                   boxes=[*now.boxes, stall], frame_size=(w, h), model=frame.model)
print(names[12:])
[(b.class_name, b.origin) for b in saved.boxes]
"""),
    ("markdown", """
## Export the reviewed frames as a sample version
`streetorder samples export` writes the next version (`v0001`, never overwriting one) under the samples root, with a manifest: provenance per image, the class list, counts per class and camera. The reviewer's boxes are labels (the stall included), the rejected case's violation a hard negative. `--format coco|cvat|labelstudio` writes the files those tools import; `samples import` brings a labelled batch back.
"""),
    ("code", """
so("samples", "export", "--db", db, "--pseudo", "proposals")
from pipeline.train.versions import find_versions
manifest = json.loads((W / "samples" / "v0001" / "manifest.json").read_text())
[v.describe() for v in find_versions()], manifest.get("counts")
"""),
    ("markdown", """
## Retrain (tiny settings)
From the current model, with the new classes appended to its head (old ids and what it knew stay), on base data plus every sample version; the card records the command and each data version.
"""),
    ("code", """
so("retrain", "--name", "street-v3", "--models-dir", str(W / "models"), "--limit", "8", "--imgsz", "64", "--epochs", "1", "--batch", "8", "--workers", "0", "--teacher-imgsz", "160", "--workdir", str(W / "train"))
card = json.loads((W / "models" / "street-v3" / "card.json").read_text())
card["classes"][12:], card["training"]["command"], card["training"]["data_versions"]["sample_versions"]
"""),
    ("markdown", """
## The gate, with an HTML report
The benchmark is a fixed half of garbage-cn val, the held-out fifth of every sample version, unseen clean streets and the recently reviewed cases. `--bench-limit` keeps this quick and marks the verdict as not a promotion benchmark.
"""),
    ("code", """
so("evaluate", "--candidate", "street-v3", "--bench-limit", "24", "--db", db, "--report", str(W / "report"))
sorted(p.name for p in (W / "report").iterdir())
"""),
    ("code", """
import matplotlib.pyplot as plt, matplotlib.image as mpimg
plt.figure(figsize=(12, 4)); plt.imshow(mpimg.imread(W / "report" / "pr-garbage_cn.png")); plt.axis("off");
"""),
    ("markdown", """
## Promote: refused, and why
The one-epoch model loses to street-v2, so `promote` refuses and CURRENT stays.
"""),
    ("code", """
rc = so("promote", "street-v3", "--bench-limit", "24", "--db", db, check=False)
rc, (W / "models" / "CURRENT").read_text().strip()
"""),
    ("markdown", """
## Promote a better model, then roll back in one command
With street-v1 current, street-v2 is better on every check and goes through (the full benchmark, no limit). A running `streetorder serve` follows CURRENT within seconds, both ways.
"""),
    ("code", """
(W / "models" / "CURRENT").write_text("street-v1\\n")
so("promote", "street-v2", "--db", db)
print((W / "models" / "CURRENT").read_text())
so("rollback")
print((W / "models" / "CURRENT").read_text())
json.loads((W / "models" / "HISTORY.json").read_text())["stack"]
"""),
]

if __name__ == "__main__":
    (HERE / "01-model-and-engine.ipynb").write_text(json.dumps(nb(MODEL, "model"), indent=1, ensure_ascii=False) + "\n")
    (HERE / "02-ledger-and-review.ipynb").write_text(json.dumps(nb(LEDGER, "ledger"), indent=1, ensure_ascii=False) + "\n")
    (HERE / "03-retraining-loop.ipynb").write_text(json.dumps(nb(LOOP, "loop"), indent=1, ensure_ascii=False) + "\n")

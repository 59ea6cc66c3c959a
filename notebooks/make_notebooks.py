"""Writes the walk-through notebooks from the cells below (run from the repo root; keeps them diff-friendly)."""

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent


def nb(cells):
    return {
        "cells": [
            {"cell_type": kind, "metadata": {}, "source": src.strip("\n").splitlines(keepends=True), **({"outputs": [], "execution_count": None} if kind == "code" else {})}
            for kind, src in cells
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
from pipeline.images import load_image
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
from pipeline.devtools.scenarios import load_scenarios, run_scenario
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

if __name__ == "__main__":
    (HERE / "01-model-and-engine.ipynb").write_text(json.dumps(nb(MODEL), indent=1, ensure_ascii=False) + "\n")
    (HERE / "02-ledger-and-review.ipynb").write_text(json.dumps(nb(LEDGER), indent=1, ensure_ascii=False) + "\n")

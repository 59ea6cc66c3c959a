"""How many real vending photos become vending cases, and how many clean streets raise a false one.

The photos are listed by eye in `datasets/vending-eval.yaml` (real street photos from `../shared`, evaluation
only: never training data). Each goes through the served detector (the street model with its cue model) and the
rules as a patrol photo does, with the rules' defaults or a given config, and counts as found when the vending
rule reports a violation on it. The report also says which stall path fired, so a change to the rule shows where
it gains or loses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import yaml

from ..config import RulesConfig
from ..detect import Detector
from ..source.images import load_image
from ..paths import REPO, SHARED_DATA
from ..rules import FrameContext, evaluate

EVAL_LIST = REPO / "datasets" / "vending-eval.yaml"
GROUPS = ("vending", "borderline", "clean")


@dataclass
class PhotoResult:
    image: str
    vending: bool
    classes: list[str] = field(default_factory=list)  # the classes behind the violation(s)


def vending_photo_report(detector: Detector, rules: RulesConfig | None = None, listing: Path = EVAL_LIST, data_root: Path = SHARED_DATA, groups: Sequence[str] = GROUPS) -> dict:
    """Per group of the listing: photos, how many became vending cases, and each photo's result."""
    rules = rules or RulesConfig()
    entries = yaml.safe_load(Path(listing).read_text(encoding="utf-8"))
    at = datetime(2026, 11, 21, 10, 0, tzinfo=timezone.utc)
    out: dict = {"listing": str(listing), "groups": {}}
    for group in groups:
        results = []
        for entry in entries.get(group) or []:
            image = load_image(data_root / entry["image"])
            [dets] = detector.detect([image])
            ctx = FrameContext(at=at, width=image.shape[1], height=image.shape[0], detections=dets, rules=rules, zones=None)
            found = [v for v in evaluate(ctx) if v.type == "street_vending"]
            names = sorted({str(dets.data["class_name"][m]) for v in found for m in v.members})
            results.append(PhotoResult(entry["image"], bool(found), names))
        out["groups"][group] = {
            "photos": len(results),
            "vending_cases": sum(r.vending for r in results),
            "results": [asdict(r) for r in results],
        }
    return out


def summary_line(report: dict) -> str:
    g = report["groups"]
    return ", ".join(f"{k}: {v['vending_cases']} of {v['photos']} became vending cases" for k, v in g.items())



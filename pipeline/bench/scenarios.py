"""Scenario tests for the engine: short sequences composed from real images, with known ground truth.

A scenario pastes real object crops (a garbage pile from garbage-cn, parked motorbikes from streets-in, a
vendor's stall) onto a real street background, frame by frame on a timeline. The real detector runs on every
composed frame; optional dropout removes all detections from a share of frames. The incidents the engine
reports are matched to the expected ones, giving incident-level recall, precision and duplicate rate.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..config import CameraConfig, RulesConfig, StreetOrderConfig, TrackingConfig, IncidentConfig
from ..detect import Detector, empty_detections
from ..detect.plan import camera_detector
from ..domain import IncidentReport, ViolationType
from ..engine import Engine
from ..source.frames import Frame
from ..geometry import box_iou
from ..source.images import load_image
from ..paths import SCENARIOS_DIR, SHARED_DATA

SHIPPED = SCENARIOS_DIR
DEFAULT_DATA_ROOT = SHARED_DATA


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Actor(_M):
    """A real crop pasted into the frames between `appear_s` and `vanish_s`, standing at `at` (bottom-centre)."""

    name: str
    source: str = Field(description="Image path under the data root")
    box: tuple[int, int, int, int] = Field(description="Region of the source image to cut out (pixels)")
    at: tuple[float, float] = Field(description="Where the crop's bottom-centre stands in the frame")
    height: float = Field(gt=4, description="Pasted height in frame pixels")
    appear_s: float = 0
    vanish_s: float = 1e9
    walk: tuple[float, float] = Field((0.0, 0.0), description="Velocity in px/s (a passer-by)")

    def position(self, t: float) -> tuple[float, float]:
        dt = t - self.appear_s
        return self.at[0] + self.walk[0] * dt, self.at[1] + self.walk[1] * dt


class Expected(_M):
    type: ViolationType
    zone: str
    first_seen_s: tuple[float, float] = Field(description="Window the incident's first_seen must fall in (s from start)")
    last_seen_s: tuple[float, float] | None = None
    actor: str | None = Field(None, description="The incident box must overlap this actor")


class Scenario(_M):
    name: str
    description: str = ""
    camera: CameraConfig
    rules: RulesConfig = Field(default_factory=RulesConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    incidents: IncidentConfig = Field(default_factory=IncidentConfig)
    background: str
    start: datetime
    duration_s: float = Field(gt=0)
    step_s: float = Field(2.0, gt=0)
    actors: tuple[Actor, ...] = ()
    expected: tuple[Expected, ...] = ()

    @model_validator(mode="after")
    def _actors_known(self) -> "Scenario":
        names = {a.name for a in self.actors}
        for e in self.expected:
            if e.actor and e.actor not in names:
                raise ValueError(f"expected incident refers to unknown actor '{e.actor}'")
        return self

    def config(self) -> StreetOrderConfig:
        return StreetOrderConfig(cameras=(self.camera,), rules=self.rules, tracking=self.tracking, incidents=self.incidents)


def load_scenarios(folder: Path = SHIPPED) -> list[Scenario]:
    return [Scenario.model_validate(yaml.safe_load(p.read_text(encoding="utf-8"))) for p in sorted(Path(folder).glob("*.yaml"))]


class Composer:
    """Builds the frame at time t: the background with every actor present at t pasted in (feathered edges)."""

    def __init__(self, scenario: Scenario, data_root: Path) -> None:
        self.scenario = scenario
        w, h = scenario.camera.resolution
        self.background = cv2.resize(load_image(data_root / scenario.background), (w, h), interpolation=cv2.INTER_AREA)
        self.patches: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for a in scenario.actors:
            x1, y1, x2, y2 = a.box
            crop = load_image(data_root / a.source)[y1:y2, x1:x2]
            scale = a.height / crop.shape[0]
            crop = cv2.resize(crop, (max(1, round(crop.shape[1] * scale)), max(1, round(a.height))), interpolation=cv2.INTER_AREA)
            alpha = np.ones(crop.shape[:2], np.float32)
            edge = max(2, min(crop.shape[:2]) // 12)
            alpha = cv2.GaussianBlur(cv2.copyMakeBorder(alpha[edge:-edge, edge:-edge], edge, edge, edge, edge, cv2.BORDER_CONSTANT, value=0), (0, 0), edge / 2)
            self.patches[a.name] = (crop, alpha[..., None])

    def actor_box(self, actor: Actor, t: float) -> tuple[float, float, float, float]:
        crop, _ = self.patches[actor.name]
        cx, bottom = actor.position(t)
        return (cx - crop.shape[1] / 2, bottom - crop.shape[0], cx + crop.shape[1] / 2, bottom)

    def frame(self, t: float) -> np.ndarray:
        out = self.background.astype(np.float32)
        h, w = out.shape[:2]
        for a in self.scenario.actors:
            if not a.appear_s <= t < a.vanish_s:
                continue
            crop, alpha = self.patches[a.name]
            x1, y1, _, _ = (round(v) for v in self.actor_box(a, t))
            fx1, fy1, fx2, fy2 = max(x1, 0), max(y1, 0), min(x1 + crop.shape[1], w), min(y1 + crop.shape[0], h)
            if fx2 <= fx1 or fy2 <= fy1:
                continue
            c = crop[fy1 - y1 : fy2 - y1, fx1 - x1 : fx2 - x1].astype(np.float32)
            al = alpha[fy1 - y1 : fy2 - y1, fx1 - x1 : fx2 - x1]
            out[fy1:fy2, fx1:fx2] = out[fy1:fy2, fx1:fx2] * (1 - al) + c * al
        return out.astype(np.uint8)


@dataclass
class ScenarioResult:
    name: str
    dropout: float
    expected: int
    produced: int
    matched: int
    duplicates: int
    false: int
    incidents: list[dict] = field(default_factory=list)
    misses: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def run_scenario(
    scenario: Scenario, detector: Detector, data_root: Path = DEFAULT_DATA_ROOT, dropouts: tuple[float, ...] = (0.0,), seed: int = 0, evidence_dir: Path | None = None,
    gate: bool = False, seen: dict | None = None,
) -> list[ScenarioResult]:
    """Run one scenario once per dropout rate. The detector sees each distinct composed frame once; every dropout
    run replays the same detections (frames are recomposed, not kept: a scenario is hundreds of frames).

    `gate`: the frames go through the night job's change gate first (`sampling.gated`, with the camera's gate
    config), as `streetorder run` feeds them: unchanged ticks reuse the last detected frame's detections and image.
    `seen`: detections by image digest, to share between runs of one scenario (gated and not).
    """
    composer = Composer(scenario, data_root)
    times = np.arange(0.0, scenario.duration_s + 1e-9, scenario.step_s)
    w, h = scenario.camera.resolution
    camera_det = DistinctDetector(camera_detector(detector, scenario.camera, w, h), seen)  # sliced where the scenario's camera asks
    if gate:
        return _run_gated(scenario, composer, camera_det, len(times), dropouts, seed, evidence_dir)
    detections = [camera_det.detect([composer.frame(float(t))])[0] for t in times]
    results = []
    for dropout in dropouts:
        engine = Engine(scenario.config(), evidence_dir=evidence_dir)
        rng = np.random.default_rng(seed)
        final: dict[str, IncidentReport] = {}
        for t, dets in zip(times, detections):
            if dropout and rng.random() < dropout:
                dets = empty_detections()
            result = engine.process(Frame(composer.frame(float(t)), scenario.start + timedelta(seconds=float(t)), scenario.camera.id), dets)
            for r in result.reports:
                final[r.incident_id] = r
        for r in engine.flush():
            final[r.incident_id] = r
        results.append(score(scenario, composer, list(final.values()), dropout))
    return results


class DistinctDetector:
    """A detector that runs once per distinct image (a composed scene repeats most frames exactly, and the
    detector is deterministic, so they would get the same boxes anyway)."""

    def __init__(self, detector: Detector, seen: dict | None = None) -> None:
        self.detector, self.names = detector, detector.names
        self.seen = seen if seen is not None else {}

    def detect(self, images):
        keys = [hashlib.blake2b(im.tobytes(), digest_size=16).digest() for im in images]
        new = {k: im for k, im in zip(keys, images) if k not in self.seen}
        if new:
            for k, d in zip(new, self.detector.detect(list(new.values()))):
                self.seen[k] = d
        return [self.seen[k] for k in keys]


def _run_gated(scenario: Scenario, composer: Composer, detector: Detector, count: int, dropouts, seed: int, evidence_dir: Path | None) -> list[ScenarioResult]:
    from ..source.sampling import ImageTicks, gated

    w, h = scenario.camera.resolution
    ticks = list(gated(ImageTicks(composer.frame, scenario.step_s, count), scenario.camera, detector, scenario.start, w, h, rules=scenario.rules, every_s=scenario.step_s))
    results = []
    for dropout in dropouts:
        engine = Engine(scenario.config(), evidence_dir=evidence_dir)
        rng = np.random.default_rng(seed)
        final: dict[str, IncidentReport] = {}
        for frame, dets in ticks:
            if dropout and rng.random() < dropout:
                dets = empty_detections()
            for r in engine.process(frame, dets).reports:
                final[r.incident_id] = r
        for r in engine.flush():
            final[r.incident_id] = r
        results.append(score(scenario, composer, list(final.values()), dropout))
    return results


def score(scenario: Scenario, composer: Composer, produced: list[IncidentReport], dropout: float) -> ScenarioResult:
    start = scenario.start
    actors = {a.name: a for a in scenario.actors}

    def secs(d: datetime) -> float:
        return (d - start).total_seconds()

    def fits(e: Expected, r: IncidentReport) -> bool:
        if r.type != e.type or r.zone_id != e.zone:
            return False
        if not e.first_seen_s[0] <= secs(r.first_seen) <= e.first_seen_s[1]:
            return False
        if e.last_seen_s and not e.last_seen_s[0] <= secs(r.last_seen) <= e.last_seen_s[1]:
            return False
        if e.actor and r.box:
            a = actors[e.actor]
            t_mid = (max(a.appear_s, secs(r.first_seen)) + min(a.vanish_s, secs(r.last_seen))) / 2
            if box_iou(np.array([composer.actor_box(a, t_mid)]), np.array([r.box]))[0, 0] < 0.1:
                return False
        return True

    matched_by: dict[int, list[IncidentReport]] = {}
    unmatched = []
    for r in sorted(produced, key=lambda r: r.first_seen):
        hit = next((i for i, e in enumerate(scenario.expected) if fits(e, r)), None)
        if hit is None:
            unmatched.append(r)
        else:
            matched_by.setdefault(hit, []).append(r)
    return ScenarioResult(
        name=scenario.name,
        dropout=dropout,
        expected=len(scenario.expected),
        produced=len(produced),
        matched=len(matched_by),
        duplicates=sum(len(v) - 1 for v in matched_by.values()),
        false=len(unmatched),
        incidents=[
            {"id": r.incident_id, "type": r.type, "zone": r.zone_id, "first_seen_s": secs(r.first_seen), "last_seen_s": secs(r.last_seen), "ended": r.ended, "count": r.count, "severity": r.severity}
            for r in sorted(produced, key=lambda r: r.first_seen)
        ],
        misses=[e.model_dump() for i, e in enumerate(scenario.expected) if i not in matched_by],
    )


def summarize(results: list[ScenarioResult]) -> dict:
    expected = sum(r.expected for r in results)
    produced = sum(r.produced for r in results)
    matched = sum(r.matched for r in results)
    true_pos = matched + sum(r.duplicates for r in results)  # a duplicate is a real violation, reported twice
    return {
        "recall": round(matched / expected, 4) if expected else 1.0,
        "precision": round(true_pos / produced, 4) if produced else 1.0,
        "duplicate_rate": round(sum(r.duplicates for r in results) / produced, 4) if produced else 0.0,
        "expected": expected,
        "produced": produced,
        "scenarios": [r.as_dict() for r in results],
    }

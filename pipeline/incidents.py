"""Violations over time become incidents: one per real thing in the world.

Camera incidents are keyed on camera, zone, type and place (box overlap), never on a track id, so they
survive detector dropouts and id switches. Patrol-photo incidents are keyed on type, GPS distance and time.
Both are driven by frame time only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import supervision as sv

from .config import IncidentConfig, PatrolConfig
from .domain import VIOLATION_TYPES, GeoPoint, ViolationType
from .geometry import box_iou, box_overlap, haversine_m
from .rules import Violation, outside_zone_ids



@dataclass
class Snapshot:
    """A candidate best frame for an incident: the frame, what was in it, and how good it is as evidence."""

    image: np.ndarray
    at: datetime
    box: tuple[float, float, float, float]
    detections: sv.Detections  # the frame's tracked detections; `members` index these (for drawing)
    members: tuple[int, ...]
    quality: float
    private: sv.Detections  # every raw detection, ignored and untracked ones too: anyone in the frame is blurred
    model: str | None = None  # the model that proposed the detections (kept as a sample's provenance)


def snapshot_quality(v: Violation, width: int, height: int, edge_px: int) -> float:
    """Score times size, heavily discounted when the box is cut by the frame edge."""
    x1, y1, x2, y2 = v.box
    size = np.sqrt(max(x2 - x1, 0) * max(y2 - y1, 0) / float(width * height))
    cut = x1 <= edge_px or y1 <= edge_px or x2 >= width - edge_px or y2 >= height - edge_px
    return float(v.score * size * (0.2 if cut else 1.0))


@dataclass
class Incident:
    id: str
    type: ViolationType
    zone_id: str
    box: tuple[float, float, float, float]
    first_seen: datetime
    last_seen: datetime
    severity: int
    count: int
    score: float
    hits: int = 1
    ended: bool = False
    best: Snapshot | None = None
    best_version: int = 0  # bumps when `best` improves, so evidence is rewritten only then
    camera_id: str | None = None
    gps: GeoPoint | None = None
    meta: dict = field(default_factory=dict)

    def absorb(self, v: Violation, at: datetime) -> None:
        self.last_seen = max(self.last_seen, at)
        self.first_seen = min(self.first_seen, v.since)
        self.box = v.box
        self.severity = max(self.severity, v.severity)
        self.count = max(self.count, v.count)
        self.score = max(self.score, v.score)
        self.hits += 1

    def offer(self, snap: Snapshot) -> None:
        if self.best is None or snap.quality > self.best.quality:
            self.best = snap
            self.best_version += 1


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]+", "_", s)


@dataclass
class IncidentChanges:
    opened: list[Incident] = field(default_factory=list)
    updated: list[Incident] = field(default_factory=list)
    ended: list[Incident] = field(default_factory=list)


class CameraIncidents:
    """Open incidents of one camera."""

    def __init__(self, camera_id: str, cfg: IncidentConfig) -> None:
        self.camera_id = camera_id
        self.cfg = cfg
        self.open: list[Incident] = []
        self._ids: set[str] = set()

    def _match(self, v: Violation, taken: set[int]) -> int | None:
        """Index of the open incident this violation continues: same type and zone, and the same place."""
        best, best_score = None, 0.0
        one_spot = VIOLATION_TYPES[v.type].whole_zone or v.zone_id in outside_zone_ids()  # the region outside every bay is one spot
        for k, inc in enumerate(self.open):
            if k in taken or inc.type != v.type or inc.zone_id != v.zone_id:
                continue
            if one_spot:
                score = 1.0
            else:
                a, b = np.array([v.box]), np.array([inc.box])
                iou = float(box_iou(a, b)[0, 0])
                inside = max(float(box_overlap(a, b)[0, 0]), float(box_overlap(b, a)[0, 0]))  # a pile that grew or shrank
                score = iou if iou >= self.cfg.match_iou else (inside * 0.5 if inside >= 0.6 else 0.0)
            if score > best_score:
                best, best_score = k, score
        return best

    def _new_id(self, v: Violation) -> str:
        base = f"{_slug(self.camera_id)}-{v.type}-{_slug(v.zone_id)}-{v.since:%Y%m%dT%H%M%S}"
        n, candidate = 1, base
        while candidate in self._ids:
            n += 1
            candidate = f"{base}-{n}"
        self._ids.add(candidate)
        return candidate

    def update(self, at: datetime, violations: list[Violation], snapshot_of) -> IncidentChanges:
        """Fold one frame's violations in; `snapshot_of(v)` builds a Snapshot for a violation."""
        changes = IncidentChanges()
        taken: set[int] = set()
        for v in sorted(violations, key=lambda v: -v.score):
            k = self._match(v, taken)
            if k is None:
                inc = Incident(self._new_id(v), v.type, v.zone_id, v.box, v.since, at, v.severity, v.count, v.score, camera_id=self.camera_id)
                self.open.append(inc)
                taken.add(len(self.open) - 1)
                changes.opened.append(inc)
            else:
                inc = self.open[k]
                taken.add(k)
                inc.absorb(v, at)
                changes.updated.append(inc)
            inc.offer(snapshot_of(v))
        still_open = []
        for inc in self.open:
            if (at - inc.last_seen).total_seconds() > self.cfg.end_after_s:
                inc.ended = True
                changes.ended.append(inc)
            else:
                still_open.append(inc)
        self.open = still_open
        return changes


class PatrolIncidents:
    """Patrol photos have no track: the same type within `radius_m` and `window_s` of an incident's last photo
    is the same incident."""

    def __init__(self, cfg: PatrolConfig) -> None:
        self.cfg = cfg
        self.incidents: list[Incident] = []
        self._ids: set[str] = set()

    def update(self, at: datetime, gps: GeoPoint, violations: list[Violation], snapshot_of) -> IncidentChanges:
        changes = IncidentChanges()
        for v in violations:
            near = [
                inc for inc in self.incidents
                if inc.type == v.type and abs((at - inc.last_seen).total_seconds()) <= self.cfg.window_s
                and haversine_m(gps.lat, gps.lon, inc.gps.lat, inc.gps.lon) <= self.cfg.radius_m
            ]
            if near:
                inc = min(near, key=lambda i: haversine_m(gps.lat, gps.lon, i.gps.lat, i.gps.lon))
                inc.absorb(v, at)
                inc.first_seen = min(inc.first_seen, at)
                if inc not in changes.opened and inc not in changes.updated:
                    changes.updated.append(inc)
            else:
                base = f"patrol-{v.type}-{gps.lat:.5f}_{gps.lon:.5f}-{at:%Y%m%dT%H%M%S}"
                iid, n = base, 1
                while iid in self._ids:
                    n += 1
                    iid = f"{base}-{n}"
                self._ids.add(iid)
                inc = Incident(iid, v.type, v.zone_id, v.box, at, at, v.severity, v.count, v.score, gps=gps)
                self.incidents.append(inc)
                changes.opened.append(inc)
            inc.offer(snapshot_of(v))
        # Past the window nothing can join an incident any more: it ends (and the engine forgets it).
        for inc in self.incidents:
            if (at - inc.last_seen).total_seconds() > self.cfg.window_s:
                inc.ended = True
                changes.ended.append(inc)
        self.incidents = [i for i in self.incidents if not i.ended]
        return changes

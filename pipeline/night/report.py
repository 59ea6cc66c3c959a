"""The report of one night (`streetorder run`): one self-contained HTML file for the people who read it in the
morning, with no network needed (thumbnails are embedded as data: URIs, the style is inline, no script).

Built from the run's `BatchSummary` (which cases it touched, which files it read, failed or skipped, the span of
frame times per camera) and the ledger (those cases, their incidents' first/last seen, evidence thumbnails), so
it shows what the ledger holds after the night, not what the engine believed on the way.
- cases by camera (patrol photos last) and violation type, each with its evidence thumbnails;
- per camera, a timeline (inline SVG) of when each incident of this night was open;
- every file that failed or was skipped, with the reason.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select

from ..db.tables.ledger import Case, CaseEvidence, CaseIncident
from ..cases.report import MAX_GALLERY, template_env, thumbnail_uri
from ..domain import VIOLATION_TYPES
from ..evidence import StaticEvidence, static_evidence
from .units import PATROL

if TYPE_CHECKING:
    from ..cases import CaseStore
    from ..config import StreetOrderConfig
    from .job import BatchSummary

TIMELINE_W = 960  # SVG user units; the SVG scales to the page width
LABEL_W = 250  # left column of each timeline row: case, type and times
ROW_H = 22
AXIS_H = 26
_TICK_MINUTES = (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720)


@dataclass(frozen=True)
class NightCase:
    id: int
    type: str
    label: str
    status: str
    action: str  # what this night did to it: created, reopened, updated, unchanged
    district: str
    street: str
    point: str
    first_seen: datetime
    last_seen: datetime
    incidents: int
    images: list[tuple[str, str | None]]  # (evidence kind, data: URI or None when unreadable)
    static: list[StaticEvidence] = field(default_factory=list)  # the new things that stayed put behind it


@dataclass(frozen=True)
class Bar:
    """One incident on a camera's timeline; x and width in SVG units."""

    case_id: int
    incident_id: str
    type: str
    label: str
    start: datetime
    end: datetime
    ended: bool
    x: float
    width: float
    y: float


@dataclass(frozen=True)
class Tick:
    x: float
    at: datetime


@dataclass(frozen=True)
class Timeline:
    camera_id: str
    start: datetime
    end: datetime
    bars: list[Bar]
    ticks: list[Tick]
    height: float
    width: int = TIMELINE_W
    label_w: int = LABEL_W
    plot_w: int = TIMELINE_W - LABEL_W - 30  # room on the right for the last tick's label


@dataclass(frozen=True)
class CameraSection:
    camera_id: str  # or "patrol"
    title: str  # name and place from the camera config
    frames: int
    files: int
    by_type: dict[str, list[NightCase]]
    timeline: Timeline | None


@dataclass(frozen=True)
class NightReport:
    started_at: datetime
    footage: str
    timezone: str
    database: str
    summary: dict
    sections: list[CameraSection]
    failed: list[dict]
    read: list[dict]
    stopped: str | None
    totals: dict[str, int] = field(default_factory=dict)


def build_night_report(store: CaseStore, summary: BatchSummary, config: StreetOrderConfig, *, footage: Path, started_at: datetime, database: str = "") -> NightReport:
    ids = sorted(summary.cases)
    with store.db.transaction() as s:
        cases = list(s.scalars(select(Case).where(Case.id.in_(ids)).order_by(Case.id))) if ids else []
        incidents: dict[int, list[CaseIncident]] = defaultdict(list)
        thumbs: dict[int, dict[str, str]] = defaultdict(dict)  # case -> kind -> sha of the latest (the engine's best)
        if ids:
            for inc in s.scalars(select(CaseIncident).where(CaseIncident.case_id.in_(ids)).order_by(CaseIncident.first_seen)):
                incidents[inc.case_id].append(inc)
            q = select(CaseEvidence).where(CaseEvidence.case_id.in_(ids), CaseEvidence.purged_at.is_(None)).order_by(CaseEvidence.id)
            for e in s.scalars(q):
                thumbs[e.case_id][e.kind] = e.sha256
    night_cases: dict[int, NightCase] = {}
    for n, c in enumerate(cases):
        kinds = thumbs.get(c.id, {})
        picks = (("crop", kinds.get("crop")), ("context", kinds.get("context") or kinds.get("best_frame")))
        # thumbnails for the first MAX_GALLERY cases only: the file must stay small enough to open on a phone
        images = [(k, thumbnail_uri(store.evidence, sha)) for k, sha in picks if sha] if n < MAX_GALLERY else [("thumbnail", None)]
        night_cases[c.id] = NightCase(
            c.id, c.type, _label(c.type), c.status, summary.cases[c.id], c.district, c.street, c.point, c.first_seen, c.last_seen, len(incidents[c.id]), images,
            static_evidence(store.evidence, kinds.get("metadata"), c.last_seen),
        )

    frames: dict[str, int] = defaultdict(int)
    files: dict[str, int] = defaultdict(int)
    for r in summary.read + [f for f in summary.failed if f.get("frames_used")]:  # partly read files count too
        key = r.get("camera_id") or PATROL
        frames[key] += r.get("frames", r.get("frames_used", 0))
        files[key] += 1
    sections = []
    with_cases = {c.camera_id or PATROL for c in cases}
    known = [c.id for c in config.cameras]
    order = [c for c in known if c in summary.windows or c in files or c in with_cases]
    order += sorted(with_cases - set(known) - {PATROL}) + [PATROL]  # a camera since removed from the config
    for cam in order:
        mine = [night_cases[c.id] for c in cases if (c.camera_id or PATROL) == cam]
        window = summary.windows.get(cam)
        bars_from = [(night_cases[cid], inc) for cid, incs in incidents.items() for inc in incs if (inc.camera_id or PATROL) == cam]
        if cam == PATROL and not mine and not files.get(PATROL) and not bars_from:
            continue
        by_type: dict[str, list[NightCase]] = {}
        for nc in sorted(mine, key=lambda n: (n.type, n.first_seen, n.id)):
            by_type.setdefault(nc.type, []).append(nc)
        timeline = _timeline(cam, window, bars_from) if window else None
        sections.append(CameraSection(cam, _title(config, cam), frames.get(cam, 0), files.get(cam, 0), by_type, timeline))

    totals = {a: sum(v == a for v in summary.cases.values()) for a in ("created", "reopened", "updated", "unchanged")}
    return NightReport(
        started_at, str(footage), store.config.report_timezone, database, summary.as_dict(), sections,
        sorted(summary.failed, key=lambda f: ({"failed": 0, "partial": 1, "skipped": 2}.get(f.get("outcome", "failed"), 0), f["path"])),
        summary.read, summary.stopped, totals,
    )


def _label(type_: str) -> str:
    kind = VIOLATION_TYPES.get(type_)
    return kind.label if kind else type_


def _title(config: StreetOrderConfig, cam: str) -> str:
    if cam == PATROL:
        return "巡查照片 patrol photos"
    c = next((c for c in config.cameras if c.id == cam), None)
    if c is None:
        return "not in the camera config"
    loc = c.location
    return " · ".join(x for x in (c.name, f"{loc.district} {loc.street} {loc.point}".strip()) if x)


def _timeline(cam: str, window: list[datetime], incidents: list[tuple[NightCase, CaseIncident]]) -> Timeline:
    """Bars for the incidents open during `window` (the night's frame times on this camera), clipped to it."""
    start, end = window
    if end - start < timedelta(minutes=1):  # a single frame or photo: give the axis some width
        start, end = start - timedelta(seconds=30), end + timedelta(seconds=30)
    span = (end - start).total_seconds()
    plot_w = Timeline.plot_w

    def x(t: datetime) -> float:
        return LABEL_W + plot_w * min(max((t - start).total_seconds() / span, 0.0), 1.0)

    bars = []
    shown = [(nc, inc) for nc, inc in incidents if inc.last_seen >= start and inc.first_seen <= end]
    for i, (nc, inc) in enumerate(sorted(shown, key=lambda p: (p[1].first_seen, p[0].id))):
        x0, x1 = x(inc.first_seen), x(inc.last_seen)
        ended = inc.ended or cam == PATROL  # a patrol sighting is a moment, never "still open"
        bars.append(Bar(nc.id, inc.incident_id, nc.type, nc.label.split(" ")[0], inc.first_seen, inc.last_seen, ended, x0, max(x1 - x0, 3.0), AXIS_H + i * ROW_H))
    step = next((m for m in _TICK_MINUTES if span / (m * 60) <= 10), _TICK_MINUTES[-1])
    first = start.replace(second=0, microsecond=0)
    first += timedelta(minutes=(-first.minute) % step if step <= 60 else 0)
    ticks, t = [], first
    while t <= end:
        if t >= start:
            ticks.append(Tick(x(t), t))
        t += timedelta(minutes=step)
    return Timeline(cam, start, end, bars, ticks, AXIS_H + max(len(bars), 1) * ROW_H + 6)


_PALETTE = ("#d9534f", "#2f7fc1", "#3c9d4e", "#e08e0b", "#8e5cb5", "#17a2b8", "#795548")


def type_color(type_: str) -> str:
    """One colour per violation type, stable across reports (its place in `VIOLATION_TYPES`)."""
    names = list(VIOLATION_TYPES)
    return _PALETTE[(names.index(type_) if type_ in names else len(names)) % len(_PALETTE)]


def report_path(out_dir: Path, started_at: datetime, timezone: str) -> Path:
    from zoneinfo import ZoneInfo

    return Path(out_dir) / f"night-{started_at.astimezone(ZoneInfo(timezone)):%Y%m%d-%H%M%S}.html"


def write_night_report(report: NightReport, path: Path) -> Path:
    """Render to `path` through a temporary file and a rename: a reader never sees half a report."""
    import os

    env = template_env(report.timezone)
    env.filters["rel"] = lambda p: _relative(p, report.footage)
    env.filters["color"] = type_color
    html = env.get_template("night.html").render(r=report, types=VIOLATION_TYPES)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(html, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _relative(p: str, root: str) -> str:
    try:
        return str(Path(p).relative_to(root))
    except ValueError:
        return p

"""Monthly report per district and point (月度排名): HTML with evidence thumbnails, and CSV.

Figures are replayed from the case history, so a past month's report stays what it was whatever happened
later. For month M (midnight to midnight in `report_timezone`) and `as_of` = the end of M or now if earlier:
- new: cases first seen in M;
- open: cases whose status at `as_of` is detected, dispatched, rectified or reopened;
- overdue: of those, dispatched with the deadline of their latest dispatch before `as_of`;
- closed / relapsed: cases closed in M / reopened (反弹) in M, each case counted once;
- median time to rectify: hours from the latest dispatch (交办) to each rectification (整改) in M.
Ranking of districts: score = open + relapsed, lower is better; ties go to fewer overdue, then the shorter
median time to rectify (none counts as worst), then the name. Equal keys share a rank.
"""

from __future__ import annotations

import base64
import csv
import io
import re
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select

from ..db.tables.ledger import Case, CaseEvent, CaseEvidence
from ..domain import ViolationType
from ..live.outages import CameraOutages, DarkRow, dark_by_district
from .errors import EvidenceError, LedgerError
from .evidence_store import EvidenceStore
from .lifecycle import OPEN_STATUSES, CaseStatus
from .store import CaseStore

MAX_GALLERY = 300
THUMB_PX = 160
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


@dataclass
class Counts:
    new: int = 0
    open: int = 0
    overdue: int = 0
    closed: int = 0
    relapsed: int = 0
    rectify_hours: list[float] = field(default_factory=list)

    @property
    def rectified(self) -> int:
        return len(self.rectify_hours)

    @property
    def median_rectify_h(self) -> float | None:
        return statistics.median(self.rectify_hours) if self.rectify_hours else None

    def add(self, other: Counts) -> None:
        self.new += other.new
        self.open += other.open
        self.overdue += other.overdue
        self.closed += other.closed
        self.relapsed += other.relapsed
        self.rectify_hours.extend(other.rectify_hours)


@dataclass(frozen=True)
class DistrictRow:
    rank: int
    district: str
    score: int  # open + relapsed
    counts: Counts


@dataclass(frozen=True)
class PointRow:
    district: str
    point: str
    street: str
    counts: Counts


@dataclass(frozen=True)
class GalleryCase:
    id: int
    type: ViolationType
    status: str
    district: str
    point: str
    first_seen: datetime
    overdue: bool
    relapse_count: int
    images: list[tuple[str, str | None]]  # (evidence kind, data: URI or None when the file is unreadable)


@dataclass(frozen=True)
class MonthlyReport:
    month: str
    timezone: str
    start: datetime
    end: datetime
    as_of: datetime
    districts: list[DistrictRow]
    points: list[PointRow]
    totals: Counts
    gallery: list[GalleryCase]
    dark: list[DarkRow] = field(default_factory=list)  # camera outages per district (blind points, not cases: not ranked)


def month_bounds(month: str, tz: str) -> tuple[datetime, datetime]:
    m = _MONTH.match(month)
    if not m:
        raise LedgerError(f"month must look like 2026-11, got {month!r}")
    y, mo = int(m.group(1)), int(m.group(2))
    zone = ZoneInfo(tz)
    start = datetime(y, mo, 1, tzinfo=zone)
    end = datetime(y + (mo == 12), mo % 12 + 1, 1, tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


@dataclass
class _Replay:
    """One case's history up to `as_of`, reduced to what the figures need."""

    status: str | None = None
    deadline: datetime | None = None
    last_dispatch: datetime | None = None
    closed_in_month: bool = False
    relapsed_in_month: bool = False
    relapses: int = 0
    rectify_hours: list[float] = field(default_factory=list)


def _replay(events: Iterable[CaseEvent], start: datetime, as_of: datetime) -> _Replay:
    r = _Replay()
    for e in events:
        if e.at >= as_of:
            break
        in_month = e.at >= start
        r.status = e.to_status
        if e.to_status == CaseStatus.DISPATCHED and e.from_status != CaseStatus.DISPATCHED:
            r.last_dispatch, r.deadline = e.at, e.deadline_at
        if e.from_status == e.to_status:
            continue  # merges, escalations, purges: no transition
        if in_month and e.to_status == CaseStatus.CLOSED:
            r.closed_in_month = True
        if e.to_status == CaseStatus.REOPENED:
            r.relapses += 1
            r.relapsed_in_month |= in_month
        if in_month and e.to_status == CaseStatus.RECTIFIED and r.last_dispatch is not None:
            r.rectify_hours.append((e.at - r.last_dispatch).total_seconds() / 3600)
    return r


@dataclass(frozen=True)
class CaseFigures:
    """One case's share of a period's figures, with where and what it is: the report sums these, and the
    overview page (service/http/routers/overview.py) both sums them and lists the cases behind each sum."""

    id: int
    type: str
    district: str
    street: str
    point: str
    gps: tuple[float, float] | None
    first_seen: datetime
    counts: Counts
    replay: _Replay


def load_history(s, as_of: datetime) -> tuple[list[Case], dict[int, list[CaseEvent]]]:
    """The cases created before `as_of` and their events before it, read once and replayed over any period up to it."""
    cases = list(s.scalars(select(Case).where(Case.created_at < as_of).order_by(Case.id)))
    history: dict[int, list[CaseEvent]] = defaultdict(list)
    for e in s.scalars(select(CaseEvent).where(CaseEvent.at < as_of).order_by(CaseEvent.case_id, CaseEvent.id)):
        history[e.case_id].append(e)
    return cases, history


def replay_period(cases: list[Case], history: dict[int, list[CaseEvent]], start: datetime, end: datetime, as_of: datetime) -> list[tuple[Case, CaseFigures]]:
    """Each case that existed at `as_of` with its figures over the period [start, end) (see the module docstring)."""
    out = []
    for case in cases:
        r = _replay(history.get(case.id, ()), start, as_of)
        if r.status is None:
            continue
        c = Counts(rectify_hours=r.rectify_hours)
        c.new = int(start <= case.first_seen < end)
        c.open = int(r.status in OPEN_STATUSES)
        c.overdue = int(r.status == CaseStatus.DISPATCHED and r.deadline is not None and r.deadline < as_of)
        c.closed = int(r.closed_in_month)
        c.relapsed = int(r.relapsed_in_month)
        gps = (case.lat, case.lon) if case.lat is not None and case.lon is not None else None
        out.append((case, CaseFigures(case.id, case.type, case.district, case.street, case.point, gps, case.first_seen, c, r)))
    return out


def rank_districts(districts: dict[str, Counts]) -> list[DistrictRow]:
    """The monthly ranking (see the module docstring): equal keys share a rank."""
    order = sorted(districts.items(), key=lambda kv: _rank_key(kv[0], kv[1]))
    rows: list[DistrictRow] = []
    for i, (name, c) in enumerate(order):
        rank = rows[-1].rank if rows and _rank_key("", rows[-1].counts)[:3] == _rank_key("", c)[:3] else i + 1
        rows.append(DistrictRow(rank, name, c.open + c.relapsed, c))
    return rows


def build_report(store: CaseStore, month: str, *, now: datetime | None = None) -> MonthlyReport:
    start, end = month_bounds(month, store.config.report_timezone)
    now = now or store.clock()
    as_of = min(end, now)
    if as_of <= start:
        raise LedgerError(f"month {month} has not started yet")
    with store.db.transaction() as s:
        points: dict[tuple[str, str], Counts] = defaultdict(Counts)
        streets: dict[tuple[str, str], str] = {}
        districts: dict[str, Counts] = defaultdict(Counts)
        shown: list[tuple[Case, _Replay, bool]] = []
        for case, f in replay_period(*load_history(s, as_of), start, end, as_of):
            c = f.counts
            key = (f.district, f.point)
            points[key].add(c)
            streets.setdefault(key, f.street)
            districts[f.district].add(c)
            if c.new or c.open or c.closed or c.relapsed or c.rectify_hours:
                shown.append((case, f.replay, bool(c.overdue)))
        gallery = _gallery(s, store.evidence, shown)

    rows = rank_districts(districts)
    totals = Counts()
    for c in districts.values():
        totals.add(c)
    point_rows = [PointRow(d, p, streets[(d, p)], c) for (d, p), c in sorted(points.items())]
    dark = dark_by_district(CameraOutages(store.db).overlapping(start, as_of), start, as_of)
    return MonthlyReport(month, store.config.report_timezone, start, end, as_of, rows, point_rows, totals, gallery, dark)


def _rank_key(name: str, c: Counts) -> tuple:
    med = c.median_rectify_h
    return (c.open + c.relapsed, c.overdue, med if med is not None else float("inf"), name)


def _gallery(s, evidence: EvidenceStore, shown: list[tuple[Case, _Replay, bool]]) -> list[GalleryCase]:
    """Overdue cases first, then by place; each with its status as of the report, not as of today."""
    shown = sorted(shown, key=lambda x: (not x[2], x[0].district, x[0].point, x[0].id))[:MAX_GALLERY]
    ids = [c.id for c, _, _ in shown]
    refs: dict[int, dict[str, str]] = defaultdict(dict)  # case → kind → sha of the latest (the engine's best so far)
    if ids:
        q = select(CaseEvidence).where(CaseEvidence.case_id.in_(ids), CaseEvidence.purged_at.is_(None)).order_by(CaseEvidence.id)
        for e in s.scalars(q):
            refs[e.case_id][e.kind] = e.sha256
    out = []
    for case, replay, overdue in shown:
        kinds = refs.get(case.id, {})
        before = kinds.get("crop") or kinds.get("best_frame") or kinds.get("context")
        images = [(k, thumbnail_uri(evidence, sha)) for k, sha in (("before", before), ("after", kinds.get("after"))) if sha]
        out.append(GalleryCase(case.id, case.type, replay.status, case.district, case.point, case.first_seen, overdue, replay.relapses, images))
    return out


def thumbnail_uri(evidence: EvidenceStore, sha256: str, px: int = THUMB_PX) -> str | None:
    """A small JPEG of a stored image as a data: URI, so the HTML is one self-contained file."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(evidence.read(sha256))) as im:
            im = ImageOps.exif_transpose(im).convert("RGB")
            im.thumbnail((px, px))
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=70)
    except (EvidenceError, UnidentifiedImageError, OSError, ValueError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


CSV_COLUMNS = ("level", "rank", "district", "point", "street", "new", "open", "overdue", "closed", "relapsed", "rectified", "median_rectify_h", "dark_outages", "dark_hours", "still_dark")


def write_csv(report: MonthlyReport, path: Path) -> Path:
    """UTF-8 with a BOM, so spreadsheet programs show the Chinese names correctly."""
    with path.open("w", newline="", encoding="utf-8-sig") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        for d in report.districts:
            w.writerow(["district", d.rank, d.district, "", "", *_figures(d.counts), "", "", ""])
        for p in report.points:
            w.writerow(["point", "", p.district, p.point, p.street, *_figures(p.counts), "", "", ""])
        for d in report.dark:  # a district's dark cameras: the case columns stay empty
            w.writerow(["dark", "", d.district, "", "", *[""] * 7, d.outages, f"{d.dark_hours:.2f}", d.still_dark])
    return path


def _figures(c: Counts) -> list:
    med = c.median_rectify_h
    return [c.new, c.open, c.overdue, c.closed, c.relapsed, c.rectified, "" if med is None else f"{med:.2f}"]


def template_env(timezone: str):
    """The Jinja environment of the ledger's HTML reports (monthly, nightly): autoescaped, one shared style
    sheet, and the `local` (a time in `timezone`) and `hours` filters."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("pipeline.cases", "templates"), autoescape=select_autoescape(["html"]))
    env.filters["hours"] = lambda h: "–" if h is None else f"{h:.1f} h"
    zone = ZoneInfo(timezone)
    env.filters["local"] = lambda dt, fmt="%Y-%m-%d %H:%M": dt.astimezone(zone).strftime(fmt)
    return env


def write_html(report: MonthlyReport, path: Path) -> Path:
    path.write_text(template_env(report.timezone).get_template("report.html").render(r=report), encoding="utf-8")
    return path


def write_report(store: CaseStore, month: str, out_dir: Path, *, now: datetime | None = None) -> tuple[Path, Path]:
    report = build_report(store, month, now=now)
    out_dir.mkdir(parents=True, exist_ok=True)
    return write_html(report, out_dir / f"report-{month}.html"), write_csv(report, out_dir / f"report-{month}.csv")

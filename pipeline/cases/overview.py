"""The district overview (数据看板): the month's figures per district, street and type, a 12-week trend, the
monthly ranking and the points on a map, and for each figure the cases behind it; beside them, the cameras that
were dark (`pipeline.live.outages`: blind points, never cases, so never in the figures or the ranking).

Everything is the monthly report's replay of the case history (`report.replay_period`), so a figure here is
the report's figure and the list behind it is exactly the cases it counts. One difference: `rectified` counts
cases (with at least one rectification in the period), not rectifications, so a figure and its list agree.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from ..live.outages import CameraOutages, DarkRow, Outage, dark_by_district, still_dark
from .errors import LedgerError
from .report import CaseFigures, Counts, DistrictRow, load_history, month_bounds, rank_districts, replay_period
from .store import CaseStore

FIGURES = ("new", "open", "overdue", "rectified", "relapsed")
TABLE_FIGURES = ("open", "overdue", "rectified", "relapsed")
TREND_FIGURES = ("new", "rectified", "relapsed")
TREND_WEEKS = 12


@dataclass(frozen=True)
class Period:
    """A month (`2026-11`) or a week (its Monday, `2026-11-16`), midnight to midnight in the report time zone."""

    kind: str
    key: str
    start: datetime
    end: datetime

    @property
    def query(self) -> dict[str, str]:
        return {self.kind: self.key}


class NoSuchPeriod(LedgerError):
    """A month or week that has not started, or lies outside what a date can hold: it has no figures."""


def month_period(month: str, tz: str) -> Period:
    try:
        start, end = month_bounds(month, tz)
    except (ValueError, OverflowError):  # year 0000 or 9999-12: outside what a date can hold
        raise NoSuchPeriod(f"month {month!r} is out of range") from None
    return Period("month", month, start, end)


def week_period(day: date, tz: str) -> Period:
    """The week (Monday to Monday) that `day` falls in."""
    monday = day - timedelta(days=day.weekday())
    try:
        start = datetime(monday.year, monday.month, monday.day, tzinfo=ZoneInfo(tz))
        return Period("week", monday.isoformat(), start.astimezone(UTC), (start + timedelta(days=7)).astimezone(UTC))
    except (ValueError, OverflowError):
        raise NoSuchPeriod(f"the week of {day.isoformat()} is out of range") from None


def current_month(now: datetime, tz: str) -> str:
    return now.astimezone(ZoneInfo(tz)).strftime("%Y-%m")


@dataclass(frozen=True)
class Where:
    """Which cases a figure covers: every given field must match."""

    district: str | None = None
    street: str | None = None
    point: str | None = None
    type: str | None = None

    def matches(self, f: CaseFigures) -> bool:
        return all(v is None or getattr(f, k) == v for k, v in self.query.items())

    @property
    def query(self) -> dict[str, str]:
        return {k: v for k, v in (("district", self.district), ("street", self.street), ("point", self.point), ("type", self.type)) if v is not None}


def counts_as(f: CaseFigures, figure: str) -> bool:
    """Whether case `f` is one of the cases behind `figure`."""
    c = f.counts
    if figure == "rectified":
        return c.rectified > 0
    if figure in FIGURES:
        return bool(getattr(c, figure))
    raise LedgerError(f"unknown figure {figure!r}; known: {', '.join(FIGURES)}")


@dataclass(frozen=True)
class Row:
    """One line of a table: its place or type, and the figures of its cases."""

    where: Where
    figures: dict[str, int]


@dataclass(frozen=True)
class WeekPoint:
    period: Period
    figures: dict[str, int]


@dataclass(frozen=True)
class MapPoint:
    district: str
    street: str
    point: str
    lat: float
    lon: float
    cases: int
    open: int
    overdue: int


@dataclass(frozen=True)
class Overview:
    period: Period
    timezone: str
    as_of: datetime
    totals: dict[str, int]
    by_district: list[Row]
    by_street: list[Row]
    by_type: list[Row]
    ranking: list[DistrictRow]
    trend: list[WeekPoint] = field(default_factory=list)
    points: list[MapPoint] = field(default_factory=list)
    dark: list[DarkRow] = field(default_factory=list)  # per district: camera outages in the period
    dark_cameras: list[Outage] = field(default_factory=list)  # the cameras still dark at `as_of`, longest first


def _as_of(store: CaseStore, period: Period, now: datetime | None) -> datetime:
    as_of = min(period.end, now or store.clock())
    if as_of <= period.start:
        raise NoSuchPeriod(f"{period.kind} {period.key} has not started yet")
    return as_of


def _sum(figs: list[CaseFigures], names: tuple[str, ...]) -> dict[str, int]:
    return {n: sum(counts_as(f, n) for f in figs) for n in names}


def _rows(figs: list[CaseFigures], key) -> list[Row]:
    groups: dict[Where, list[CaseFigures]] = defaultdict(list)
    for f in figs:
        groups[key(f)].append(f)
    rows = [Row(w, _sum(g, TABLE_FIGURES)) for w, g in groups.items()]
    return sorted((r for r in rows if any(r.figures.values())), key=lambda r: (-r.figures["open"], -r.figures["overdue"], tuple(r.where.query.values())))


def build_overview(store: CaseStore, month: str | None = None, *, now: datetime | None = None) -> Overview:
    tz = store.config.report_timezone
    now = now or store.clock()
    period = month_period(month or current_month(now, tz), tz)
    as_of = _as_of(store, period, now)
    with store.db.transaction() as s:
        cases, history = load_history(s, as_of)
        figs = [f for _, f in replay_period(cases, history, period.start, period.end, as_of)]
        weeks = []
        last_monday = as_of.astimezone(ZoneInfo(tz)).date()
        last_monday -= timedelta(days=last_monday.weekday())
        for back in range(TREND_WEEKS - 1, -1, -1):
            week = week_period(last_monday - timedelta(weeks=back), tz)
            week_figs = [f for _, f in replay_period(cases, history, week.start, week.end, min(week.end, as_of))]
            weeks.append(WeekPoint(week, _sum(week_figs, TREND_FIGURES)))
    districts: dict[str, Counts] = defaultdict(Counts)
    for f in figs:
        districts[f.district].add(f.counts)
    points: dict[tuple[str, str], list[CaseFigures]] = defaultdict(list)
    for f in figs:
        if f.gps is not None:
            points[(f.district, f.point)].append(f)
    outages = CameraOutages(store.db).overlapping(period.start, as_of)
    return Overview(
        period=period, timezone=tz, as_of=as_of, totals=_sum(figs, FIGURES),
        by_district=_rows(figs, lambda f: Where(district=f.district)),
        by_street=_rows(figs, lambda f: Where(district=f.district, street=f.street)),
        by_type=_rows(figs, lambda f: Where(type=f.type)),
        ranking=[r for r in rank_districts(districts) if r.score or r.counts.overdue or r.counts.rectified or r.counts.new],
        trend=weeks,
        points=[
            MapPoint(d, g[0].street, p, sum(f.gps[0] for f in g) / len(g), sum(f.gps[1] for f in g) / len(g), len(g), sum(f.counts.open for f in g), sum(f.counts.overdue for f in g))
            for (d, p), g in sorted(points.items())
        ],
        dark=dark_by_district(outages, period.start, as_of),
        dark_cameras=sorted((o for o in outages if still_dark(o, as_of)), key=lambda o: (o.down_since, o.camera_id)),
    )


def cases_behind(store: CaseStore, figure: str, period: Period, where: Where, *, now: datetime | None = None) -> list[int]:
    """The ids of the cases behind one figure of the overview, oldest first."""
    if figure not in FIGURES:
        raise LedgerError(f"unknown figure {figure!r}; known: {', '.join(FIGURES)}")
    as_of = _as_of(store, period, now)
    with store.db.transaction() as s:
        figs = [f for _, f in replay_period(*load_history(s, as_of), period.start, period.end, as_of)]
    return [f.id for f in figs if where.matches(f) and counts_as(f, figure)]

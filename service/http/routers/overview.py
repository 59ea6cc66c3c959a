"""GET /overview: the district overview (数据看板) for the people ranked each month, reviewers and admins.

- GET /overview          the page (HTML): figures per district, street and type, a 12-week trend, the monthly
  ranking, the points on a plain map from their GPS (inline SVG: no tiles, no CDN, works offline), and the
  cameras that were dark (blind points: camera outages, not cases);
- GET /overview/figures  the same figures as JSON, each with the link to its cases;
- GET /overview/cases    the cases behind one figure (`figure`, `month` or `week`, and district/street/point/type).

Every figure on the page is a link to the cases behind it, computed by the same replay of the ledger
(`pipeline.cases.overview`), so the list is exactly what was counted. The page uses the review page's login
(session cookie, or a reviewer key for scripts); a camera key gets 403.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request, Security
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel

from pipeline.cases.overview import FIGURES, NoSuchPeriod, TABLE_FIGURES, TREND_FIGURES, Overview, Period, Where, build_overview, cases_behind, current_month, month_period, week_period
from pipeline.domain import VIOLATION_TYPES

from ...runtime.errors import NotFound, Unprocessable
from .. import display
from ..auth import require
from ..deps import State
from ..errors import error_responses
from ..keys import Principal, Role
from .review import _JSON_ERROR, ReviewerPage

router = APIRouter(prefix="/overview", tags=["overview"])
templates = display.install(Jinja2Templates(directory=Path(__file__).resolve().parents[1] / "templates"))  # invisible characters shown

Month = Annotated[str | None, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="Month like 2026-11 (report time zone); default: this month")]
Week = Annotated[date | None, Query(description="A week by one of its days, like 2026-11-16 (instead of month); it runs Monday to Monday")]
Text = Annotated[str | None, Query(max_length=200)]
LIST_PAGE = 100
MAP_W, MAP_H, MAP_PAD = 640, 420, 30
TREND_W, TREND_H, TREND_PAD = 640, 220, 32
COLOURS = {"new": "#1e88e5", "rectified": "#43a047", "relapsed": "#e53935"}
_HTML = {"content": {"text/html": {"schema": {"type": "string"}}}}
PAGE_RESPONSES = {
    401: {"description": "Login form", **_HTML}, 403: {"description": "Not a reviewer or admin key", **_HTML},
    404: {"description": "A month or week that has not started (or out of range): no figures", "content": _JSON_ERROR}, 422: {"description": "Invalid query", "content": _JSON_ERROR},
}


@contextmanager
def _period_found():
    """A period with no figures (not started, out of range) is not there to show: 404."""
    try:
        yield
    except NoSuchPeriod as e:
        raise NotFound(str(e)) from None


class FigureOut(BaseModel):
    count: int
    cases: str  # the link to the cases behind it


class RowOut(BaseModel):
    district: str | None = None
    street: str | None = None
    type: str | None = None
    figures: dict[str, FigureOut]


class RankOut(BaseModel):
    rank: int
    district: str
    score: int
    open: int
    overdue: int
    relapsed: int
    cases: str


class WeekOut(BaseModel):
    week: str
    figures: dict[str, FigureOut]


class PointOut(BaseModel):
    district: str
    street: str
    point: str
    lat: float
    lon: float
    cases: int
    open: int
    overdue: int
    link: str


class DarkOut(BaseModel):
    district: str
    outages: int  # camera outages under way at some time in the month
    dark_hours: float  # camera-hours they took from the month (up to as_of)
    still_dark: int  # cameras dark at as_of


class DarkCameraOut(BaseModel):
    camera_id: str
    district: str
    street: str
    point: str
    owner: str | None
    stream_kind: str
    down_since: str
    dark_hours: float  # up to as_of
    error: str | None


class OverviewOut(BaseModel):
    month: str
    timezone: str
    as_of: str
    totals: dict[str, FigureOut]
    by_district: list[RowOut]
    by_street: list[RowOut]
    by_type: list[RowOut]
    ranking: list[RankOut]
    trend: list[WeekOut]
    points: list[PointOut]
    dark: list[DarkOut]
    dark_cameras: list[DarkCameraOut]


def _cases_url(request: Request, figure: str, period: Period, where: Where) -> str:
    return f"{request.url_for('overview_cases').path}?{urlencode({'figure': figure, **period.query, **where.query})}"


def _figures(request: Request, period: Period, where: Where, counts: dict[str, int]) -> dict[str, FigureOut]:
    return {name: FigureOut(count=n, cases=_cases_url(request, name, period, where)) for name, n in counts.items()}


def _out(request: Request, o: Overview) -> OverviewOut:
    row = lambda r: RowOut(**r.where.query, figures=_figures(request, o.period, r.where, r.figures))  # noqa: E731
    return OverviewOut(
        month=o.period.key, timezone=o.timezone, as_of=o.as_of.isoformat(), totals=_figures(request, o.period, Where(), o.totals),
        by_district=[row(r) for r in o.by_district], by_street=[row(r) for r in o.by_street], by_type=[row(r) for r in o.by_type],
        ranking=[RankOut(rank=r.rank, district=r.district, score=r.score, open=r.counts.open, overdue=r.counts.overdue, relapsed=r.counts.relapsed, cases=_cases_url(request, "open", o.period, Where(district=r.district))) for r in o.ranking],
        trend=[WeekOut(week=w.period.key, figures=_figures(request, w.period, Where(), w.figures)) for w in o.trend],
        points=[PointOut(**p.__dict__, link=_cases_url(request, "open", o.period, Where(district=p.district, point=p.point))) for p in o.points],
        dark=[DarkOut(**r.__dict__) for r in o.dark],
        dark_cameras=[
            DarkCameraOut(camera_id=c.camera_id, district=c.district, street=c.street, point=c.point, owner=c.owner, stream_kind=c.stream_kind,
                          down_since=c.down_since.isoformat(), dark_hours=round((o.as_of - c.down_since).total_seconds() / 3600, 2), error=c.error)
            for c in o.dark_cameras
        ],
    )


def _map(points: list[PointOut]) -> list[dict]:
    """Points placed by GPS on a plain equirectangular plane (east-west shrunk by cos(latitude)), fitted to the box."""
    if not points:
        return []
    mid = math.cos(math.radians(sum(p.lat for p in points) / len(points)))
    xs, ys = [p.lon * mid for p in points], [-p.lat for p in points]
    span = max(max(xs) - min(xs), max(ys) - min(ys), 1e-6)
    scale = min((MAP_W - 2 * MAP_PAD) / span, (MAP_H - 2 * MAP_PAD) / span)
    cx, cy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    colour = lambda p: "#c62828" if p.overdue else "#ef6c00" if p.open else "#78909c"  # noqa: E731
    return [
        {"p": p, "x": round(MAP_W / 2 + (x - cx) * scale, 1), "y": round(MAP_H / 2 + (y - cy) * scale, 1), "r": round(5 + 3 * math.sqrt(p.open), 1), "colour": colour(p)}
        for p, x, y in zip(points, xs, ys)
    ]


def _trend(trend: list[WeekOut]) -> dict:
    top = max([1] + [f.count for w in trend for f in w.figures.values()])
    step = (TREND_W - 2 * TREND_PAD) / max(len(trend) - 1, 1)
    x = lambda i: round(TREND_PAD + i * step, 1)  # noqa: E731
    y = lambda n: round(TREND_H - TREND_PAD - n * (TREND_H - 2 * TREND_PAD) / top, 1)  # noqa: E731
    lines = {name: {"colour": COLOURS[name], "points": " ".join(f"{x(i)},{y(w.figures[name].count)}" for i, w in enumerate(trend)),
                    "dots": [{"x": x(i), "y": y(w.figures[name].count), "n": w.figures[name].count, "href": w.figures[name].cases, "week": w.week} for i, w in enumerate(trend)]}
             for name in TREND_FIGURES}
    return {"lines": lines, "top": top, "top_y": y(top), "base_y": y(0), "ticks": [{"x": x(i), "label": w.week[5:]} for i, w in enumerate(trend)]}


Page = ReviewerPage  # the reviewer (or admin) on the page; anyone else gets the login page before the query is looked at


@router.get("", response_class=HTMLResponse, summary="District overview 数据看板 (HTML)", responses=PAGE_RESPONSES)
def overview(request: Request, state: State, who: Page, month: Month = None) -> HTMLResponse:
    with _period_found():
        data = _out(request, build_overview(state.store, month))
    context = {
        "o": data, "who": who, "types": {t: k.label for t, k in VIOLATION_TYPES.items()}, "table_figures": TABLE_FIGURES, "trend_figures": TREND_FIGURES,
        "map": _map(data.points), "map_w": MAP_W, "map_h": MAP_H, "trend": _trend(data.trend), "trend_w": TREND_W, "trend_h": TREND_H, "colours": COLOURS,
    }
    return templates.TemplateResponse(request, "overview.html", context)


@router.get("/figures", response_model=OverviewOut, summary="The overview's figures, each with the link to its cases",
            responses=error_responses(401, 403, 404, 422))
def figures(request: Request, state: State, month: Month = None, who: Principal = Security(require(Role.REVIEWER, session=True))) -> OverviewOut:
    with _period_found():
        return _out(request, build_overview(state.store, month))


@router.get("/cases", response_class=HTMLResponse, summary="The cases behind one figure of the overview (HTML)", responses=PAGE_RESPONSES)
def overview_cases(
    request: Request, state: State, who: Page,
    figure: Annotated[str, Query(description="Which figure", json_schema_extra={"enum": list(FIGURES)})],
    month: Month = None, week: Week = None, district: Text = None, street: Text = None, point: Text = None,
    type: Annotated[str | None, Query(json_schema_extra={"enum": list(VIOLATION_TYPES)})] = None,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> HTMLResponse:
    if figure not in FIGURES:
        raise Unprocessable(f"unknown figure {figure!r}; known: {', '.join(FIGURES)}")
    if type is not None and type not in VIOLATION_TYPES:
        raise Unprocessable(f"unknown type {type!r}; valid: {', '.join(VIOLATION_TYPES)}")
    if month and week:
        raise Unprocessable("give month or week, not both")
    store = state.store
    tz = store.config.report_timezone
    where = Where(district=district, street=street, point=point, type=type)
    with _period_found():
        period = week_period(week, tz) if week else month_period(month or current_month(store.clock(), tz), tz)
        ids = cases_behind(store, figure, period, where)
    zone = ZoneInfo(tz)
    shown = [(c, c.first_seen.astimezone(zone).strftime("%Y-%m-%d %H:%M")) for c in (store.get(i) for i in ids[offset: offset + LIST_PAGE])]
    query = {"figure": figure, **period.query, **where.query}
    more = lambda at: f"{request.url_for('overview_cases').path}?{urlencode({**query, 'offset': at})}"  # noqa: E731
    context = {
        "cases": shown, "total": len(ids), "figure": figure, "period": period, "where": where, "who": who, "offset": offset,
        "types": {t: k.label for t, k in VIOLATION_TYPES.items()}, "tz": tz,
        "next_url": more(offset + LIST_PAGE) if offset + LIST_PAGE < len(ids) else None, "prev_url": more(max(offset - LIST_PAGE, 0)) if offset else None,
    }
    return templates.TemplateResponse(request, "overview_cases.html", context)

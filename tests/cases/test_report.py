"""The monthly report from a seeded ledger: every figure, the ranking, the CSV and the HTML thumbnails."""

from __future__ import annotations

import base64
import csv
import io
import re
from datetime import datetime, timedelta

import pytest
from PIL import Image

from pipeline.cases.errors import LedgerError
from pipeline.cases.report import build_report, month_bounds, write_report

from ..conftest import val_images
from .factory import SHANGHAI, evidence_file, incident


def at(clock, month: int, day: int, hour: float = 9) -> None:
    clock.t = datetime(2026, month, day, tzinfo=SHANGHAI) + timedelta(hours=hour)


def seed(store, clock, tmp_path) -> dict[str, int]:
    """Five districts, each with a known story in November 2026 (Asia/Shanghai)."""
    ids: dict[str, int] = {}
    photo = val_images(1)[0].read_bytes()

    def post(name, district, point, type="street_vending", seen=None, **kw):
        r = store.post_incident(incident(tmp_path, name, district=district, point=point, type=type, first_seen=seen or clock.t, **kw))
        ids.setdefault(name, r.case_id)
        return r

    def move(name, *steps, hours=1.0):
        for step in steps:
            clock.advance(hours=hours)
            store.transition(ids[name], step, actor="t", note="done" if step in ("rectified", "rejected") else None)

    # 徐汇区 in October: one case dispatched and never done (overdue in November), one closed in October
    at(clock, 10, 20)
    post("c1", "徐汇区", "C-1", type="garbage")
    move("c1", "dispatched")
    post("c2", "徐汇区", "C-2")
    move("c2", "dispatched", "rectified", "verified", "closed")
    # 黄浦区: a vending case rectified in 1 h, closed, and back two days later (反弹); garbage left overdue; one undispatched
    at(clock, 11, 2)
    post("a1", "黄浦区", "A-1", evidence=[evidence_file(tmp_path, 1, data=photo)])
    move("a1", "dispatched", "rectified", "verified", "closed")
    at(clock, 11, 4)
    assert post("a1-back", "黄浦区", "A-1").reopened
    at(clock, 11, 3)
    post("a2", "黄浦区", "A-2", type="garbage")
    move("a2", "dispatched")
    post("a3", "黄浦区", "A-1", type="garbage", evidence=[evidence_file(tmp_path, 3, kind="metadata", data=b'{"not": "an image"}')])
    # 静安区: two cases rectified in 3 h and 5 h and closed, one false positive
    at(clock, 11, 10)
    post("b1", "静安区", "B-1", type="non_motor_parking")
    move("b1", "dispatched")
    clock.advance(hours=3)
    store.transition(ids["b1"], "rectified", actor="owner", after_photo=val_images(2)[1].read_bytes())
    move("b1", "verified", "closed")
    post("b2", "静安区", "B-1")
    move("b2", "dispatched")
    move("b2", "rectified", hours=5)
    move("b2", "verified", "closed")
    post("b3", "静安区", "B-2")
    move("b3", "rejected")
    # 浦东新区 and 闵行区: one undispatched case each (a tie)
    at(clock, 11, 20)
    post("d1", "浦东新区", "D-1")
    post("e1", "闵行区", "E-1")
    # December: a2 finally rectified; that must not change November
    at(clock, 12, 2)
    move("a2", "rectified")
    return ids


@pytest.fixture
def seeded(store, clock, tmp_path):
    return store, seed(store, clock, tmp_path)


def figures(c) -> tuple:
    return (c.new, c.open, c.overdue, c.closed, c.relapsed, c.rectified, c.median_rectify_h)


def test_figures_and_ranking(seeded):
    store, ids = seeded
    r = build_report(store, "2026-11", now=datetime(2026, 12, 10, tzinfo=SHANGHAI))
    assert r.start == datetime(2026, 11, 1, tzinfo=SHANGHAI) and r.as_of == r.end == datetime(2026, 12, 1, tzinfo=SHANGHAI)
    d = {row.district: row for row in r.districts}
    #                         new open overdue closed relapsed rectified median h
    assert figures(d["黄浦区"].counts) == (3, 3, 1, 1, 1, 1, 1.0)
    assert figures(d["静安区"].counts) == (3, 0, 0, 2, 0, 2, 4.0)
    assert figures(d["徐汇区"].counts) == (0, 1, 1, 0, 0, 0, None)
    assert figures(d["浦东新区"].counts) == figures(d["闵行区"].counts) == (1, 1, 0, 0, 0, 0, None)
    # score = open + relapsed; ties: fewer overdue, then shorter median; equal keys share a rank
    assert [(row.rank, row.district, row.score) for row in r.districts] == [(1, "静安区", 0), (2, "浦东新区", 1), (2, "闵行区", 1), (4, "徐汇区", 1), (5, "黄浦区", 4)]
    p = {(row.district, row.point): row.counts for row in r.points}
    assert figures(p[("黄浦区", "A-1")]) == (2, 2, 0, 1, 1, 1, 1.0)
    assert figures(p[("黄浦区", "A-2")]) == (1, 1, 1, 0, 0, 0, None)
    assert figures(p[("静安区", "B-1")]) == (2, 0, 0, 2, 0, 2, 4.0)
    assert figures(r.totals)[:6] == (8, 6, 2, 3, 1, 3)


def test_a_month_in_progress_is_reported_as_of_now(seeded):
    store, ids = seeded
    r = build_report(store, "2026-11", now=datetime(2026, 11, 3, 12, tzinfo=SHANGHAI))
    d = {row.district: row.counts for row in r.districts}
    assert r.as_of == datetime(2026, 11, 3, 12, tzinfo=SHANGHAI)
    assert figures(d["黄浦区"]) == (3, 2, 0, 1, 0, 1, 1.0)  # a2 dispatched 10:00 on the 3rd, not overdue yet; no relapse yet
    assert "静安区" not in d


def test_csv_and_html_files(seeded, tmp_path):
    store, ids = seeded
    html, csv_path = write_report(store, "2026-11", tmp_path / "out", now=datetime(2026, 12, 10, tzinfo=SHANGHAI))
    assert csv_path.read_bytes().startswith(b"\xef\xbb\xbf")  # BOM for spreadsheet programs
    rows = list(csv.DictReader(io.StringIO(csv_path.read_text(encoding="utf-8-sig"))))
    districts = [row for row in rows if row["level"] == "district"]
    assert [(x["rank"], x["district"], x["open"], x["relapsed"], x["median_rectify_h"]) for x in districts][::4] == [("1", "静安区", "0", "0", "4.00"), ("5", "黄浦区", "3", "1", "1.00")]
    assert {(x["district"], x["point"]) for x in rows if x["level"] == "point"} >= {("黄浦区", "A-1"), ("静安区", "B-1"), ("徐汇区", "C-1")}

    page = html.read_text(encoding="utf-8")
    ranking = page[page.index("District ranking") : page.index("Points")]
    assert [ranking.index(n) for n in ("静安区", "浦东新区", "闵行区", "徐汇区", "黄浦区")] == sorted(ranking.index(n) for n in ("静安区", "浦东新区", "闵行区", "徐汇区", "黄浦区"))
    thumbs = re.findall(r'src="data:image/jpeg;base64,([^"]+)"', page)
    assert len(thumbs) >= 8
    sizes = [Image.open(io.BytesIO(base64.b64decode(t))).size for t in thumbs]
    assert max(max(s) for s in sizes) == 160  # the real 640 px photos were shrunk
    case_b1 = page[page.index(f'id="case-{ids["b1"]}"') :].split('<div class="case', 1)[0]
    assert 'title="before"' in case_b1 and 'title="after"' in case_b1
    case_a3 = page[page.index(f'id="case-{ids["a3"]}"') :].split('<div class="case', 1)[0]
    assert "no evidence" in case_a3  # its only file is metadata, not an image
    assert f'id="case-{ids["c2"]}"' not in page  # closed in October: not part of November
    case_a2 = page[page.index(f'id="case-{ids["a2"]}"') :].split('<div class="case', 1)[0]
    assert "garbage · dispatched · <strong>overdue</strong>" in case_a2  # as it stood at the end of November


def test_month_validation(store):
    with pytest.raises(LedgerError, match="like 2026-11"):
        month_bounds("2026-13", "Asia/Shanghai")
    with pytest.raises(LedgerError, match="has not started"):
        build_report(store, "2030-01", now=datetime(2026, 11, 5, tzinfo=SHANGHAI))


def test_the_month_reports_each_districts_dark_cameras_unranked(seeded, tmp_path):
    """Camera outages in the month (cut at its start and end) per district, in the HTML and as `dark` rows of the
    CSV; the ranking and the case figures are those of the ledger alone."""
    from pipeline.domain import Location
    from pipeline.live.outages import CameraOutages

    store, _ = seeded
    before = build_report(store, "2026-11", now=datetime(2026, 12, 10, tzinfo=SHANGHAI))
    book = CameraOutages(store.db)
    start = datetime(2026, 11, 1, tzinfo=SHANGHAI)
    book.open("cam-a", Location(district="黄浦区", street="南京东路街道", point="A-1"), None, "rtsp", start - timedelta(hours=1), start, None)
    book.close("cam-a", start + timedelta(hours=3))  # 3 h of it in November
    book.open("cam-b", Location(district="徐汇区", street="天平路街道", point="C-1"), None, "http", datetime(2026, 11, 30, 20, tzinfo=SHANGHAI), datetime(2026, 11, 30, 20, tzinfo=SHANGHAI), None)  # dark into December
    html, csv_path = write_report(store, "2026-11", tmp_path / "out", now=datetime(2026, 12, 10, tzinfo=SHANGHAI))
    r = build_report(store, "2026-11", now=datetime(2026, 12, 10, tzinfo=SHANGHAI))
    assert [(d.district, d.outages, d.dark_hours, d.still_dark) for d in r.dark] == [("徐汇区", 1, 4.0, 1), ("黄浦区", 1, 3.0, 0)]
    assert [d.district for d in r.districts] == [d.district for d in before.districts] and r.totals == before.totals
    every = list(csv.DictReader(io.StringIO(csv_path.read_text(encoding="utf-8-sig"))))
    assert all(None not in row.values() for row in every)  # every row has every column
    rows = [row for row in every if row["level"] == "dark"]
    assert [(x["district"], x["dark_outages"], x["dark_hours"], x["still_dark"], x["open"]) for x in rows] == [("徐汇区", "1", "4.00", "1", ""), ("黄浦区", "1", "3.00", "0", "")]
    page = html.read_text(encoding="utf-8")
    assert "Dark cameras" in page and page.index("Dark cameras") < page.index("Points")

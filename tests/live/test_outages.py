"""Camera outages in the ledger (PostgreSQL, as in production): one open outage per camera however often it is
declared (also after a restart: the service declares it again), closed by the camera's next picture."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

from pipeline.cli import main
from pipeline.db.engine import Database
from pipeline.domain import Location
from pipeline.live.outages import CameraOutages

T0 = datetime(2026, 12, 6, 22, 0, tzinfo=UTC)
GATE = Location(district="拱墅区", street="米市巷街道", point="学校东门")


def test_one_open_outage_per_camera_closed_by_the_next_picture(pg_url, capsys):
    db = Database(pg_url)
    book = CameraOutages(db)
    camera = f"cam-outage-{datetime.now(UTC).timestamp():.0f}"
    try:
        # two service threads (or a restarted service) declaring the same outage at once: one row
        results: list[bool] = []
        threads = [threading.Thread(target=lambda: results.append(book.open(camera, GATE, "李娜", "rtsp", T0, T0 + timedelta(minutes=5), "timed out"))) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == [False, False, False, True]
        [open_] = book.list(open_only=True, camera_id=camera)
        assert (open_.district, open_.point, open_.owner, open_.ended_at, open_.error) == ("拱墅区", "学校东门", "李娜", None, "timed out")
        assert open_.dark_s > 0

        assert book.close(camera, T0 + timedelta(minutes=7)) == 1
        assert book.close(camera, T0 + timedelta(minutes=8)) == 0  # a picture with nothing open closes nothing
        assert book.list(open_only=True, camera_id=camera) == []
        # the next outage is a row of its own
        assert book.open(camera, GATE, None, "rtsp", T0 + timedelta(hours=1), T0 + timedelta(hours=1, minutes=5), None)
        rows = book.list(camera_id=camera)
        assert [r.ended_at for r in rows] == [None, T0 + timedelta(minutes=7)]  # newest first
        assert rows[1].dark_s == 7 * 60

        # what the ledger's users read: `streetorder cases outages`
        capsys.readouterr()
        assert main(["cases", "outages", "--db", pg_url, "--camera", camera]) == 0
        out = capsys.readouterr().out.splitlines()
        assert len(out) == 2 and "now (dark)" in out[0] and "拱墅区/学校东门" in out[1] and "owner=李娜" in out[1] and "0.1 h" in out[1]
        assert main(["cases", "outages", "--db", pg_url, "--camera", camera, "--open", "--json"]) == 0
        [line] = capsys.readouterr().out.splitlines()
        assert json.loads(line)["ended_at"] is None
    finally:
        db.dispose()


def test_dark_hours_per_district_count_only_the_part_inside_the_period(tmp_path):
    """What the overview shows of outages: a month's dark camera-hours per district, an outage that began before
    the month or is still open cut at the month's start and at its end (or now), one that ended before it left out."""
    from pipeline.live.outages import dark_by_district

    db = Database(f"sqlite:///{tmp_path / 'ledger.db'}")
    book = CameraOutages(db)
    start, now = datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    other = Location(district="上城区", street="湖滨街道", point="广场")
    try:
        book.open("cam-before", GATE, None, "rtsp", start - timedelta(hours=5), start, None)  # 5 h before the month, 2 inside
        book.close("cam-before", start + timedelta(hours=2))
        book.open("cam-old", GATE, None, "rtsp", start - timedelta(days=3), start - timedelta(days=3), None)  # over before the month
        book.close("cam-old", start - timedelta(days=2))
        book.open("cam-open", GATE, "李娜", "http", now - timedelta(hours=3), now - timedelta(hours=3), "HTTP 503")  # still dark
        book.open("cam-plaza", other, None, "rtsp", now - timedelta(hours=10), now - timedelta(hours=10), None)
        book.close("cam-plaza", now - timedelta(hours=9))

        outages = book.overlapping(start, now)
        assert {o.camera_id for o in outages} == {"cam-before", "cam-open", "cam-plaza"}
        rows = dark_by_district(outages, start, now)
        assert [(r.district, r.outages, r.dark_hours, r.still_dark) for r in rows] == [("拱墅区", 2, 5.0, 1), ("上城区", 1, 1.0, 0)]
        # the same outages seen from the month's end, a week later: the open one runs on
        later = now + timedelta(days=7)
        assert dark_by_district(book.overlapping(start, later), start, later)[0].dark_hours == 2 + 3 + 7 * 24
    finally:
        db.dispose()

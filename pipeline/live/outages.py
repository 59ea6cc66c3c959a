"""Camera outages in the ledger: a camera whose stream stayed dark longer than its `offline_after_s`.

Why a table of its own and not a case: a case is a street problem a 点位长 must rectify, with a violation type,
a deadline, auto-verification from the camera's later frames, and a place in the district ranking's counts and
rectification rates. A dark camera is none of these: nobody at the point can fix a network fault, it cannot be
verified from its own frames, and counting it as a violation would make a district look worse for a broken
link (or better, since a dark camera reports nothing). What the ledger's users need is when each point was
blind and whether it still is: one row per outage, written once when it is declared and closed by the first
picture after it, so the ranking can show each district's dark camera-hours beside its cases.

The service writes through `CameraOutages`, `streetorder cases outages` reads them; both writes are idempotent (an open outage is never opened twice,
also across a restart; closing closes whatever is open), so a write retried after a database outage is safe.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from ..db.engine import Database
from ..db.tables.intake import CameraOutage
from ..domain import Location


@dataclass(frozen=True)
class Outage:
    camera_id: str
    district: str
    street: str
    point: str
    owner: str | None
    stream_kind: str
    down_since: datetime
    reported_at: datetime
    ended_at: datetime | None
    error: str | None

    @property
    def dark_s(self) -> float:
        """How long the point has been blind (until now while the outage is open)."""
        return ((self.ended_at or datetime.now(UTC)) - self.down_since).total_seconds()


@dataclass(frozen=True)
class DarkRow:
    """One district's blind time in a period: its outages that overlapped the period, the camera-hours they took
    from it, and how many cameras were still dark at its end (or now, for the period under way)."""

    district: str
    outages: int
    dark_hours: float
    still_dark: int


def dark_seconds(outage: Outage, start: datetime, end: datetime) -> float:
    """The part of `outage` that falls in [start, end); an outage still open runs to `end`."""
    stop = min(outage.ended_at or end, end)
    return max(0.0, (stop - max(outage.down_since, start)).total_seconds())


def still_dark(outage: Outage, at: datetime) -> bool:
    return outage.down_since < at and (outage.ended_at is None or outage.ended_at > at)


def dark_by_district(outages: Iterable[Outage], start: datetime, end: datetime) -> list[DarkRow]:
    """Per district, the outages that overlap [start, end) (`end`: the period's end, or now while it runs), most
    dark hours first."""
    rows: dict[str, list[Outage]] = defaultdict(list)
    for o in outages:
        if dark_seconds(o, start, end) > 0:
            rows[o.district].append(o)
    out = [DarkRow(d, len(g), round(sum(dark_seconds(o, start, end) for o in g) / 3600, 2), sum(still_dark(o, end) for o in g)) for d, g in rows.items()]
    return sorted(out, key=lambda r: (-r.dark_hours, r.district))


def _outage(row: CameraOutage) -> Outage:
    return Outage(row.camera_id, row.district, row.street, row.point, row.owner, row.stream_kind, row.down_since, row.reported_at, row.ended_at, row.error)


class CameraOutages:
    def __init__(self, db: Database) -> None:
        self.db = db

    def open(self, camera_id: str, location: Location, owner: str | None, stream_kind: str, down_since: datetime, reported_at: datetime, error: str | None) -> bool:
        """Declare the camera offline; False (nothing written) when an outage of it is already open (the partial
        unique index `uq_camera_outages_open` decides between two that declare it at once)."""
        try:
            with self.db.transaction() as s:
                if s.scalars(select(CameraOutage.id).where(CameraOutage.camera_id == camera_id, CameraOutage.ended_at.is_(None))).first() is not None:
                    return False
                s.add(CameraOutage(
                    camera_id=camera_id, district=location.district, street=location.street, point=location.point, owner=owner,
                    stream_kind=stream_kind, down_since=down_since, reported_at=reported_at, error=error,
                ))
            return True
        except IntegrityError:
            return False

    def close(self, camera_id: str, ended_at: datetime) -> int:
        """The camera's pictures are back: close its open outage (0 when none was open)."""
        with self.db.transaction() as s:
            rows = s.scalars(select(CameraOutage).where(CameraOutage.camera_id == camera_id, CameraOutage.ended_at.is_(None)).with_for_update()).all()
            for row in rows:
                row.ended_at = max(ended_at, row.down_since)
            return len(rows)

    def list(self, *, open_only: bool = False, camera_id: str | None = None) -> list[Outage]:
        """Outages, newest first."""
        q = select(CameraOutage).order_by(CameraOutage.down_since.desc(), CameraOutage.id.desc())
        if open_only:
            q = q.where(CameraOutage.ended_at.is_(None))
        if camera_id is not None:
            q = q.where(CameraOutage.camera_id == camera_id)
        with self.db.transaction() as s:
            return [_outage(r) for r in s.scalars(q)]

    def overlapping(self, start: datetime, end: datetime) -> list[Outage]:
        """Outages that were under way at some time in [start, end), newest first."""
        q = (
            select(CameraOutage)
            .where(CameraOutage.down_since < end, or_(CameraOutage.ended_at.is_(None), CameraOutage.ended_at > start))
            .order_by(CameraOutage.down_since.desc(), CameraOutage.id.desc())
        )
        with self.db.transaction() as s:
            return [_outage(r) for r in s.scalars(q)]

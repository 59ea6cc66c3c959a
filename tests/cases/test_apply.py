"""`apply_report`: every report field reaches a ledger row, with the create and merge rules the store relies on."""

from __future__ import annotations

from datetime import UTC, timedelta

from pydantic_core import PydanticUndefined

from pipeline.cases.apply import apply_report, report_columns
from pipeline.cases.messages import build_message
from pipeline.cases.views import CaseView
from pipeline.db.tables.ledger import Case, CaseEvent, CaseIncident, location_columns
from pipeline.domain import EvidenceFile, GeoPoint, IncidentReport, Location

from .factory import T0, incident

# Not a column: the files are stored by CaseStore and referenced from the case (see test_posting, test_evidence).
NOT_COPIED = {"evidence"}

FULL = IncidentReport(
    incident_id="inc-full",
    type="garbage",
    source="camera",
    camera_id="cam-9",
    zone_id="zone-z",
    location=Location(district="静安区", street="南京西路街道", point="P-042", gps=GeoPoint(lat=31.2291, lon=121.4521)),
    owner="owner-li",
    first_seen=T0,
    last_seen=T0 + timedelta(minutes=45),
    ended=True,
    severity=3,
    count=7,
    score=0.93,
    box=(10.0, 20.0, 110.0, 220.0),
    evidence=[EvidenceFile(kind="crop", path="/nowhere/crop.jpg", sha256="ab" * 32, taken_at=T0)],
)


def stored(case: Case, inc: CaseIncident, name: str):
    """A report field read back from the rows it was copied onto, in the report's own terms."""
    if name == "location":
        return case.location
    for row in (case, inc):
        if name in row.__mapper__.columns:
            value = getattr(row, name)
            return tuple(value) if name == "box" and value is not None else value
    raise AssertionError(f"report field {name!r} reaches no ledger row: give it a column and map it in pipeline/cases/apply.py")


def test_the_full_report_sets_every_field_away_from_its_default():
    # so the round trip below would notice a field that is never copied (it would read back as None/default)
    assert IncidentReport.model_fields
    for name, field in IncidentReport.model_fields.items():
        default = field.get_default(call_default_factory=True)
        assert default is PydanticUndefined or getattr(FULL, name) != default, f"give FULL a non-default {name}"


def test_every_report_field_is_copied_onto_a_new_case_or_incident_row():
    case, inc = Case(), CaseIncident(posted_at=T0)
    assert apply_report(case, FULL, create=True) and apply_report(inc, FULL, create=True)
    assert IncidentReport.model_fields.keys() - NOT_COPIED - {"location"}
    for name in IncidentReport.model_fields.keys() - NOT_COPIED:
        assert stored(case, inc, name) == getattr(FULL, name), name
    # what both rows store, both rows get
    for name in IncidentReport.model_fields.keys() - NOT_COPIED - {"location"}:
        if name in Case.__mapper__.columns and name in CaseIncident.__mapper__.columns:
            assert getattr(case, name) == getattr(inc, name), name


def test_report_columns_cover_every_report_field_and_only_columns_of_a_row():
    columns = report_columns(FULL)
    assert IncidentReport.model_fields.keys() - NOT_COPIED - {"location"} <= columns.keys()
    assert location_columns(FULL.location).items() <= columns.items()
    for name in columns:
        assert name in Case.__mapper__.columns or name in CaseIncident.__mapper__.columns, name


def test_location_round_trips_through_the_case_columns():
    case = Case()
    case.location = FULL.location
    assert (case.district, case.street, case.point, case.lat, case.lon) == ("静安区", "南京西路街道", "P-042", 31.2291, 121.4521)
    assert case.location == FULL.location
    case.location = Location(district="黄浦区", point="P-001")
    assert case.lat is None and case.lon is None and case.location == Location(district="黄浦区", street="", point="P-001")
    case.lat = 31.0  # half a coordinate is no position
    assert case.location.gps is None


def test_merging_widens_a_case_and_keeps_what_it_knew(tmp_path):
    case = Case()
    apply_report(case, incident(tmp_path, "a", camera_id=None, owner=None, severity=2, count=3, first_seen=T0), create=True)
    later = incident(tmp_path, "b", camera_id="cam-2", owner="owner-wang", gps=(31.2, 121.4), point="P-001", severity=1, count=5, first_seen=T0 - timedelta(hours=1), last_seen=T0 + timedelta(hours=2))
    assert apply_report(case, later, create=False)
    assert case.first_seen == T0 - timedelta(hours=1) and case.last_seen == T0 + timedelta(hours=2)
    assert (case.severity, case.count, case.score) == (2, 5, 0.8)
    assert case.owner == "owner-wang"  # filled in, as were the coordinates it lacked
    assert (case.lat, case.lon) == (31.2, 121.4)
    assert (case.camera_id, case.zone_id, case.box) == ("cam-2", "zone-a", [100, 100, 200, 220])  # a patrol case now watched by a camera
    assert (case.type, case.source) == ("street_vending", "patrol")
    assert not apply_report(case, later, create=False)  # monotone: absorbing it again changes nothing

    other = incident(tmp_path, "c", camera_id="cam-3", owner="owner-zhao", gps=(30.0, 120.0), point="P-777", district="静安区", severity=3)
    assert apply_report(case, other, create=False)
    assert case.severity == 3
    assert (case.owner, case.lat, case.camera_id, case.district, case.point) == ("owner-wang", 31.2, "cam-2", "黄浦区", "P-001")


def test_an_incident_row_takes_its_latest_report_except_what_identifies_it(tmp_path):
    inc = CaseIncident(posted_at=T0)
    apply_report(inc, incident(tmp_path, "inc-1", severity=3, count=4, last_seen=T0 + timedelta(hours=1)), create=True)
    latest = FULL.model_copy(update={"incident_id": "inc-1", "source": "patrol", "severity": 1, "count": 1})
    assert apply_report(inc, latest, create=False)
    assert (inc.incident_id, inc.source, inc.posted_at) == ("inc-1", "camera", T0)
    assert (inc.camera_id, inc.zone_id, inc.box, inc.ended) == ("cam-9", "zone-z", [10.0, 20.0, 110.0, 220.0], True)
    assert (inc.first_seen, inc.last_seen, inc.severity, inc.count, inc.score) == (T0, T0 + timedelta(minutes=45), 1, 1, 0.93)
    assert not apply_report(inc, latest, create=False)


def test_views_and_messages_read_the_location_from_the_case():
    case = Case(id=5, status="detected", created_at=T0, updated_at=T0, relapse_count=0, escalation_count=0, revision=1, incidents=[], events=[], evidence=[])
    apply_report(case, FULL, create=True)
    assert CaseView.of(case).location == FULL.location
    event = CaseEvent(id=1, kind="created", from_status=None, to_status="detected", actor="engine", at=T0.astimezone(UTC))
    assert build_message(case, event, "http://x/evidence").case.location == FULL.location

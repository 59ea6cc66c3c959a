"""Idempotent posting, dedup at the same spot, and the relapse rule (反弹), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from pipeline.cases.errors import EvidenceError, LedgerError
from pipeline.cases.lifecycle import CaseStatus
from pipeline.db.tables.ledger import Case, CaseEvent, CaseEvidence, CaseIncident, OutboxMessage
from pipeline.geometry import haversine_m

from .factory import T0, evidence_file, incident

WEBHOOK = {"url": "http://127.0.0.1:9/cases", "secret": "s3cret-s3cret-s3cret"}


def table_counts(store) -> dict[str, int]:
    with store.db.transaction() as s:
        return {m.__tablename__: s.scalar(select(func.count()).select_from(m)) for m in (Case, CaseIncident, CaseEvent, CaseEvidence, OutboxMessage)}


def close_case(store, clock, case_id: int) -> None:
    for step in ("dispatched", "rectified", "verified", "closed"):
        clock.advance(minutes=30)
        store.transition(case_id, step, actor="tester", note="done" if step == "rectified" else None)


def test_posting_the_same_incident_twice_changes_nothing_the_second_time(make_store, tmp_path):
    store = make_store(webhook=WEBHOOK)
    report = incident(tmp_path, "inc-1")
    first = store.post_incident(report)
    counts = table_counts(store)
    again = store.post_incident(report)
    assert first.created and not again.created and not again.changed and again.case_id == first.case_id
    assert table_counts(store) == counts == {"cases": 1, "case_incidents": 1, "case_events": 1, "case_evidence": 1, "outbox": 1}
    assert store.get(first.case_id).revision == 1


def test_a_retry_works_after_the_engine_removed_its_evidence_files(store, tmp_path):
    report = incident(tmp_path, "inc-1")
    first = store.post_incident(report)
    for ev in report.evidence:
        Path(ev.path).unlink()
    again = store.post_incident(report)
    assert again.case_id == first.case_id and not again.changed
    assert store.evidence.read(report.evidence[0].sha256)


def test_a_repost_with_news_updates_the_same_case(store, tmp_path, clock):
    r1 = incident(tmp_path, "inc-1", severity=1, count=2)
    cid = store.post_incident(r1).case_id
    later = T0 + timedelta(hours=1)
    r2 = r1.model_copy(update={"last_seen": later, "severity": 3, "count": 5, "evidence": [*r1.evidence, evidence_file(tmp_path, 99, "crop", later)]})
    res = store.post_incident(r2)
    assert (res.case_id, res.created, res.merged, res.changed) == (cid, False, False, True)
    c = store.get(cid)
    assert (c.last_seen, c.severity, c.count, c.revision) == (later, 3, 5, 2)
    assert sorted(e.kind for e in c.evidence) == ["best_frame", "crop"]
    assert len(store.list()) == 1


def test_a_batch_rerun_creates_no_duplicates(make_store, tmp_path):
    store = make_store(webhook=WEBHOOK)
    batch = [incident(tmp_path, f"night-{i}", point=f"P-{i % 4}", type=("garbage", "street_vending")[i % 2]) for i in range(8)]
    for r in batch:
        store.post_incident(r)
    counts = table_counts(store)
    results = [store.post_incident(r) for r in batch]
    assert not any(r.created or r.changed for r in results)
    assert table_counts(store) == counts
    assert counts["cases"] == 4  # incidents i and i+4 share point and type
    assert counts["case_incidents"] == 8


def test_two_cameras_seeing_the_same_point_share_one_case(store, tmp_path):
    a = store.post_incident(incident(tmp_path, "cam1-7", camera_id="cam-1"))
    b = store.post_incident(incident(tmp_path, "cam2-3", camera_id="cam-2", box=(400, 10, 500, 90)))
    assert a.created and b.merged and b.case_id == a.case_id
    c = store.get(a.case_id)
    assert c.incident_ids == ("cam1-7", "cam2-3")
    assert c.camera_id == "cam-1" and c.box == (100, 100, 200, 220)  # the case keeps its first camera's view
    assert [e.kind for e in c.history] == ["created", "merged"]
    assert len(c.evidence) == 2


def test_different_types_at_the_same_point_stay_separate(store, tmp_path):
    ids = {store.post_incident(incident(tmp_path, f"i-{t}", type=t)).case_id for t in ("street_vending", "garbage", "non_motor_parking")}
    assert len(ids) == 3


def test_same_spot_by_gps_radius_even_with_different_point_names(make_store, tmp_path):
    store = make_store(same_spot_radius_m=30)
    base = (31.2304, 121.4737)
    near = (31.2304 + 20 / 111_320, 121.4737)  # 20 m north
    far = (31.2304 + 60 / 111_320, 121.4737)  # 60 m north
    assert 19 < haversine_m(*base, *near) < 21
    a = store.post_incident(incident(tmp_path, "a", point="东门", gps=base, camera_id=None))
    b = store.post_incident(incident(tmp_path, "b", point="东门口", gps=near, camera_id=None))
    c = store.post_incident(incident(tmp_path, "c", point="北门", gps=far, camera_id=None))
    assert b.merged and b.case_id == a.case_id
    assert c.created


def test_only_open_cases_absorb_a_rejected_case_does_not(store, tmp_path, clock):
    first = store.post_incident(incident(tmp_path, "a")).case_id
    store.transition(first, "rejected", actor="reviewer", note="shadow of a tree")
    second = store.post_incident(incident(tmp_path, "b"))
    assert second.created and second.case_id != first
    assert store.get(first).status is CaseStatus.REJECTED


def test_relapse_within_the_window_reopens_and_counts(make_store, tmp_path, clock):
    store = make_store(relapse_days=7, webhook=WEBHOOK)
    cid = store.post_incident(incident(tmp_path, "a")).case_id
    close_case(store, clock, cid)
    closed_at = store.get(cid).closed_at
    back = store.post_incident(incident(tmp_path, "b", first_seen=closed_at + timedelta(days=6, hours=23)))
    assert back.reopened and back.case_id == cid and back.status is CaseStatus.REOPENED
    c = store.get(cid)
    assert c.relapse_count == 1 and c.incident_ids == ("a", "b")
    relapse = c.history[-1]
    assert (relapse.kind, relapse.from_status, relapse.to_status, relapse.actor, relapse.incident_id) == ("relapse", "closed", "reopened", "relapse-rule", "b")
    # it goes back to the owner, and can relapse again
    clock.advance(days=7)
    close_case(store, clock, cid)  # reopened → dispatched → … → closed
    again = store.post_incident(incident(tmp_path, "c", first_seen=store.get(cid).closed_at + timedelta(days=1)))
    assert again.reopened and store.get(cid).relapse_count == 2
    with store.db.transaction() as s:  # every reopening was announced
        assert s.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.payload.contains('"to_status":"reopened"'))) == 2


def test_after_the_window_a_new_case_is_opened(make_store, tmp_path, clock):
    store = make_store(relapse_days=7)
    cid = store.post_incident(incident(tmp_path, "a")).case_id
    close_case(store, clock, cid)
    late = store.post_incident(incident(tmp_path, "b", first_seen=store.get(cid).closed_at + timedelta(days=7, minutes=1)))
    assert late.created and late.case_id != cid
    assert store.get(cid).status is CaseStatus.CLOSED and store.get(cid).relapse_count == 0


def test_a_verified_case_relapses_too(store, tmp_path, clock):
    cid = store.post_incident(incident(tmp_path, "a")).case_id
    close_case(store, clock, cid)
    # and a fresh one that is only verified
    other = store.post_incident(incident(tmp_path, "x", point="P-2", first_seen=clock.t)).case_id
    for step in ("dispatched", "rectified", "verified"):
        clock.advance(minutes=10)
        store.transition(other, step, actor="t", note="ok")
    r = store.post_incident(incident(tmp_path, "y", point="P-2", first_seen=clock.advance(hours=2)))
    assert r.reopened and r.case_id == other


def test_old_footage_of_a_resolved_spot_is_attached_not_a_relapse(store, tmp_path, clock):
    cid = store.post_incident(incident(tmp_path, "a")).case_id
    close_case(store, clock, cid)
    # a second camera's incident from before the closing arrives late (batch job)
    r = store.post_incident(incident(tmp_path, "b", camera_id="cam-2", first_seen=T0 + timedelta(minutes=5)))
    assert r.merged and r.case_id == cid and r.status is CaseStatus.CLOSED
    assert store.get(cid).relapse_count == 0


def test_a_known_incident_never_reopens_its_closed_case(store, tmp_path, clock):
    report = incident(tmp_path, "a")
    cid = store.post_incident(report).case_id
    close_case(store, clock, cid)
    r = store.post_incident(report)
    assert (r.case_id, r.reopened, r.changed) == (cid, False, False)
    assert store.get(cid).status is CaseStatus.CLOSED


def test_bad_input_is_refused_clearly_and_writes_nothing(store, tmp_path):
    ok = incident(tmp_path, "a")
    store.post_incident(ok)
    before = table_counts(store)
    with pytest.raises(LedgerError, match="belongs to case .* of type street_vending, not garbage"):
        store.post_incident(ok.model_copy(update={"type": "garbage"}))
    naive = ok.model_copy(update={"incident_id": "n", "first_seen": T0.replace(tzinfo=None)})
    with pytest.raises(LedgerError, match="first_seen .* has no time zone"):
        store.post_incident(naive)
    with pytest.raises(LedgerError, match="last_seen .* is before first_seen"):
        store.post_incident(ok.model_copy(update={"incident_id": "z", "last_seen": T0 - timedelta(hours=1)}))
    with pytest.raises(LedgerError, match="not xyxy"):
        store.post_incident(ok.model_copy(update={"incident_id": "b", "box": (50, 50, 10, 10)}))
    ev = evidence_file(tmp_path, 5)
    tampered = ev.model_copy(update={"sha256": "0" * 64})
    with pytest.raises(EvidenceError, match="hashes to .* not the reported 0000"):
        store.post_incident(incident(tmp_path, "t", point="P-new", evidence=[tampered]))
    missing = ev.model_copy(update={"path": str(tmp_path / "gone.jpg")})
    with pytest.raises(EvidenceError, match="gone.jpg does not exist"):
        store.post_incident(incident(tmp_path, "m", point="P-new", evidence=[missing]))
    assert table_counts(store) == before

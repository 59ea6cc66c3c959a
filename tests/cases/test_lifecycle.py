"""Every transition of the workflow, valid and invalid, on SQLite and PostgreSQL; deadlines and overdue."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from pipeline.cases.errors import CaseNotFound, InvalidTransition, LedgerError
from pipeline.cases.lifecycle import TRANSITIONS, CaseStatus
from pipeline.cases.workflow import Step

from .factory import incident, jpeg

S = CaseStatus

# How to bring a fresh (detected) case into each status, by valid moves.
PATHS: dict[CaseStatus, list[CaseStatus]] = {
    S.DETECTED: [],
    S.DISPATCHED: [S.DISPATCHED],
    S.RECTIFIED: [S.DISPATCHED, S.RECTIFIED],
    S.VERIFIED: [S.DISPATCHED, S.RECTIFIED, S.VERIFIED],
    S.CLOSED: [S.DISPATCHED, S.RECTIFIED, S.VERIFIED, S.CLOSED],
    S.REJECTED: [S.REJECTED],
    S.REOPENED: [S.DISPATCHED, S.RECTIFIED, S.VERIFIED, S.CLOSED, S.REOPENED],
}


def needs(target: CaseStatus) -> dict:
    """The arguments a move needs beyond the actor."""
    return {"note": "reason or remark"} if target in (S.RECTIFIED, S.REJECTED) else {}


def bring_to(store, clock, case_id: int, status: CaseStatus) -> None:
    for step in PATHS[status]:
        clock.advance(minutes=1)
        store.transition(case_id, step, actor="tester", **needs(step))
    assert store.get(case_id).status is status


@pytest.fixture
def new_case(store, tmp_path):
    return store.post_incident(incident(tmp_path, "inc-1")).case_id


def test_every_status_is_reachable_and_every_status_has_a_rule():
    assert set(PATHS) == set(S) == set(TRANSITIONS)
    valid = sum(len(t) for t in TRANSITIONS.values())
    assert valid == 11 and all(s not in TRANSITIONS[s] for s in S)


@pytest.mark.parametrize("current", list(S), ids=str)
def test_every_valid_transition_is_recorded_with_actor_time_and_note(store, clock, tmp_path, current):
    assert TRANSITIONS[current] or current is S.REJECTED  # only a rejected case is done for good
    for target in sorted(TRANSITIONS[current]):
        case_id = store.post_incident(incident(tmp_path, f"inc-{target}", point=f"P-{target}")).case_id
        bring_to(store, clock, case_id, current)
        before = store.get(case_id)
        at = clock.advance(minutes=3)
        after = store.transition(case_id, target, actor="li.si", **needs(target))
        assert after.status is target
        assert after.revision == before.revision + 1
        last = after.history[-1]
        assert (last.kind, last.from_status, last.to_status, last.actor, last.at) == ("transition", current, target, "li.si", at)
        assert last.note == needs(target).get("note")
        assert store.get(case_id) == after  # what was returned is what was stored


@pytest.mark.parametrize("current", list(S), ids=str)
def test_every_invalid_transition_is_refused_with_a_clear_error_and_changes_nothing(store, clock, new_case, current):
    bring_to(store, clock, new_case, current)
    before = store.get(new_case)
    allowed = TRANSITIONS[current]
    refused = [t for t in S if t not in allowed]
    assert refused
    for target in refused:
        with pytest.raises(InvalidTransition) as e:
            store.transition(new_case, target, actor="li.si", note="x")
        msg = str(e.value)
        assert f"case {new_case}: cannot move from '{current}' to '{target}'" in msg
        assert msg.endswith(f"'{current}' is final") if not allowed else msg.endswith("can only move to: " + ", ".join(sorted(allowed)))
    assert store.get(new_case) == before


def test_dispatch_needs_an_owner_and_sets_the_deadline_per_type(make_store, clock, tmp_path):
    store = make_store(deadlines_h={"street_vending": 2, "non_motor_parking": 4, "garbage": 48})
    vending = store.post_incident(incident(tmp_path, "v", owner=None)).case_id
    garbage = store.post_incident(incident(tmp_path, "g", type="garbage", point="P-009")).case_id
    with pytest.raises(InvalidTransition, match="needs a point owner"):
        store.transition(vending, "dispatched", actor="chief")
    at = clock.advance(minutes=1)
    v = store.transition(vending, "dispatched", actor="chief", owner="owner-wang")
    g = store.transition(garbage, "dispatched", actor="chief")
    assert v.owner == "owner-wang" and g.owner == "owner-zhang"
    assert v.deadline_at == at + timedelta(hours=2) and g.deadline_at == at + timedelta(hours=48)
    assert v.history[-1].deadline_at == v.deadline_at


def test_rectify_needs_a_photo_or_note_and_keeps_the_after_photo(store, clock, new_case, tmp_path):
    bring_to(store, clock, new_case, S.DISPATCHED)
    with pytest.raises(InvalidTransition, match="after photo or a note"):
        store.transition(new_case, "rectified", actor="owner-zhang")
    photo = tmp_path / "after.jpg"
    photo.write_bytes(jpeg(4242))
    c = store.transition(new_case, "rectified", actor="owner-zhang", after_photo=photo)
    after = [e for e in c.evidence if e.kind == "after"]
    assert len(after) == 1 and store.evidence.read(after[0].sha256) == photo.read_bytes()


def test_reject_needs_a_reason_and_the_rejected_list_feeds_retraining(store, clock, new_case, tmp_path):
    with pytest.raises(InvalidTransition, match="reason"):
        store.transition(new_case, "rejected", actor="reviewer")
    store.transition(new_case, "rejected", actor="reviewer", note="a parked tricycle, not a stall")
    store.post_incident(incident(tmp_path, "other", point="P-777"))
    rejected = store.list(status="rejected")
    assert [c.id for c in rejected] == [new_case]
    assert rejected[0].reject_reason == "a parked tricycle, not a stall"
    assert json.loads(rejected[0].model_dump_json())["reject_reason"] == "a parked tricycle, not a stall"  # in `cases list --json` too
    assert rejected[0].evidence and all(store.evidence.exists(e.sha256) for e in rejected[0].evidence)


def test_several_moves_are_all_or_nothing(store, clock, new_case):
    """Auto-verification moves rectified → verified in one go: a refused later step undoes the earlier one."""
    bring_to(store, clock, new_case, S.DISPATCHED)
    clock.advance(minutes=1)
    with pytest.raises(InvalidTransition, match="'rectified' to 'closed'"):
        store.transitions(new_case, [Step(S.RECTIFIED, "cleared"), Step(S.CLOSED)], actor="camera")
    c = store.get(new_case)
    assert c.status is S.DISPATCHED and [e.to_status for e in c.history][-1] is S.DISPATCHED
    c = store.transitions(new_case, [Step(S.RECTIFIED, "cleared"), Step(S.VERIFIED, "seen clear")], actor="camera")
    assert c.status is S.VERIFIED and [e.to_status for e in c.history][-2:] == [S.RECTIFIED, S.VERIFIED]


def test_failed_check_goes_back_to_the_owner_with_a_new_deadline(store, clock, new_case):
    bring_to(store, clock, new_case, S.RECTIFIED)
    first = store.get(new_case).deadline_at
    at = clock.advance(hours=5)
    c = store.transition(new_case, "dispatched", actor="inspector", note="still there")
    assert c.deadline_at == at + timedelta(hours=2) > first


def test_overdue_lists_dispatched_cases_past_their_deadline(make_store, clock, tmp_path):
    store = make_store(deadlines_h={"street_vending": 2, "non_motor_parking": 4, "garbage": 24})
    a = store.post_incident(incident(tmp_path, "a", point="A")).case_id
    b = store.post_incident(incident(tmp_path, "b", point="B", type="non_motor_parking")).case_id
    c = store.post_incident(incident(tmp_path, "c", point="C")).case_id
    t = clock.advance(minutes=1)
    for cid in (a, b, c):
        store.transition(cid, "dispatched", actor="chief")
    store.transition(c, "rectified", actor="owner", note="cleared")
    assert store.overdue(t + timedelta(hours=1)) == []
    assert [x.id for x in store.overdue(t + timedelta(hours=3))] == [a]
    assert [x.id for x in store.overdue(t + timedelta(hours=5))] == [a, b]  # most overdue first; c is rectified


def test_unknown_case_unknown_status_missing_actor_and_backwards_time(store, clock, new_case):
    with pytest.raises(CaseNotFound, match="no case with id 999"):
        store.transition(999, "dispatched", actor="chief")
    with pytest.raises(ValueError, match="unknown status 'done'.*valid: detected"):
        store.transition(new_case, "done", actor="chief")
    with pytest.raises(LedgerError, match="actor"):
        store.transition(new_case, "dispatched", actor=" ")
    with pytest.raises(LedgerError, match="history only moves forward"):
        store.transition(new_case, "dispatched", actor="chief", at=clock.t - timedelta(hours=1))
    assert store.get(new_case).status is S.DETECTED

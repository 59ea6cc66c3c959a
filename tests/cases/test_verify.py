"""Auto-verification (自动核查) on frame time: gone long enough → verified with an after-image; still there
past the deadline → escalated."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest

from pipeline.cases.lifecycle import CaseStatus
from pipeline.cases.verify import AutoVerifier
from pipeline.geometry import box_iou

from .factory import incident, jpeg

BOX = (100, 100, 200, 220)
NEARBY = (108, 104, 206, 226)  # the same stall, detected a little differently
ELSEWHERE = (400, 300, 480, 380)


@pytest.fixture
def ledger(make_store):
    return make_store(
        deadlines_h={"street_vending": 2, "non_motor_parking": 4, "garbage": 24},
        autoverify={"gone_for_s": 300, "iou_threshold": 0.3, "max_frame_gap_s": 60},
    )


@pytest.fixture
def dispatched(ledger, tmp_path, clock):
    cid = ledger.post_incident(incident(tmp_path, "v-1", camera_id="cam-1", box=BOX)).case_id
    clock.advance(minutes=5)
    ledger.transition(cid, "dispatched", actor="chief")
    return cid


def frames(verifier, start, seconds, step=30, present=(), camera="cam-1"):
    """Feed frames every `step` s for `seconds` s after `start`; return (last time, all actions)."""
    actions, t = [], start
    for k in range(1, seconds // step + 1):
        t = start + timedelta(seconds=k * step)
        actions += verifier.check(camera, t, list(present), jpeg(k))
    return t, actions


def test_iou():
    iou = lambda a, b: float(box_iou([a], [b])[0, 0])
    assert iou(BOX, BOX) == pytest.approx(1) and iou(BOX, ELSEWHERE) == 0
    assert iou(BOX, NEARBY) > 0.7


def test_spot_clear_for_the_configured_time_verifies_with_an_after_image(ledger, dispatched, clock):
    v = AutoVerifier(ledger)
    t, actions = frames(v, clock.t, 120, present=[("street_vending", NEARBY)])
    assert actions == []
    # now the stall is gone; a garbage bag at the same place and a stall elsewhere do not count
    other = [("garbage", BOX), ("street_vending", ELSEWHERE)]
    clear_from = t + timedelta(seconds=30)
    t, actions = frames(v, t, 270, present=other)
    assert actions == [] and ledger.get(dispatched).status is CaseStatus.DISPATCHED  # 240 s clear so far
    last = jpeg(999)
    done = t + timedelta(seconds=60)
    actions = v.check("cam-1", done, other, last)
    assert [(a.case_id, a.action, a.at) for a in actions] == [(dispatched, "verified", done)]
    assert actions[0].after_image_sha256 == hashlib.sha256(last).hexdigest()
    c = ledger.get(dispatched)
    assert c.status is CaseStatus.VERIFIED
    rect, ver = c.history[-2:]
    assert (rect.from_status, rect.to_status, rect.actor, rect.at) == ("dispatched", "rectified", "auto-verify", done)
    assert clear_from.isoformat() in rect.note
    assert (ver.from_status, ver.to_status, ver.actor) == ("rectified", "verified", "auto-verify")
    after = [e for e in c.evidence if e.kind == "after"]
    assert len(after) == 1 and ledger.evidence.read(after[0].sha256) == last
    assert v.check("cam-1", done + timedelta(seconds=30), [], None) == []  # nothing left to watch


def test_a_reappearance_restarts_the_clock(ledger, dispatched, clock):
    v = AutoVerifier(ledger)
    t, actions = frames(v, clock.t, 240)
    t, more = frames(v, t, 30, present=[("street_vending", NEARBY)])
    t, more2 = frames(v, t, 270)
    assert actions + more + more2 == [] and ledger.get(dispatched).status is CaseStatus.DISPATCHED
    t, actions = frames(v, t, 60)
    assert [a.action for a in actions] == ["verified"]


def test_an_unwatched_gap_restarts_the_clock(ledger, dispatched, clock):
    v = AutoVerifier(ledger)
    t, actions = frames(v, clock.t, 240)
    t, actions2 = frames(v, t + timedelta(seconds=90), 240)  # 2 min without frames from this camera
    assert actions + actions2 == []
    t, actions = frames(v, t, 90)
    assert [a.action for a in actions] == ["verified"]


def test_frames_from_before_the_dispatch_and_other_cameras_do_not_count(ledger, dispatched, clock, tmp_path):
    v = AutoVerifier(ledger)
    assert frames(v, clock.t - timedelta(minutes=20), 600)[1] == []  # up to 10 min before dispatch
    assert frames(v, clock.t, 600, camera="cam-2")[1] == []
    undispatched = ledger.post_incident(incident(tmp_path, "v-2", point="P-2", camera_id="cam-1", box=ELSEWHERE)).case_id
    t, actions = frames(v, clock.t, 600)
    assert [(a.case_id, a.action) for a in actions] == [(dispatched, "verified")]
    assert ledger.get(undispatched).status is CaseStatus.DETECTED


def test_still_there_past_the_deadline_escalates_once(ledger, dispatched, clock):
    v = AutoVerifier(ledger)
    deadline = ledger.get(dispatched).deadline_at
    here = [("street_vending", NEARBY)]
    assert v.check("cam-1", deadline - timedelta(seconds=30), here, jpeg(1)) == []
    actions = v.check("cam-1", deadline + timedelta(seconds=10), here, jpeg(2))
    assert [(a.case_id, a.action) for a in actions] == [(dispatched, "escalated")]
    assert v.check("cam-1", deadline + timedelta(seconds=40), here, jpeg(3)) == []  # once per dispatch
    c = ledger.get(dispatched)
    assert c.status is CaseStatus.DISPATCHED and c.escalated_at == deadline + timedelta(seconds=10) and c.escalation_count == 1
    e = c.history[-1]
    assert (e.kind, e.from_status, e.to_status, e.actor) == ("escalated", "dispatched", "dispatched", "auto-verify")
    assert [x.id for x in ledger.overdue(deadline + timedelta(minutes=1))] == [dispatched]
    # gone afterwards: it still gets verified
    t, actions = frames(v, deadline + timedelta(seconds=40), 330)
    assert [a.action for a in actions] == ["verified"]


def test_naive_frame_time_is_refused(ledger, dispatched, clock):
    with pytest.raises(ValueError, match="no time zone"):
        AutoVerifier(ledger).check("cam-1", clock.t.replace(tzinfo=None), [], None)

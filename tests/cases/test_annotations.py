"""The annotation log on both backends: rows are only added, the latest box save is the frame's label set,
and a decision's row points at the transition it made."""

from __future__ import annotations

import pytest

from pipeline.cases.annotations import Annotations, LabelBox
from pipeline.cases.errors import CaseNotFound, LedgerError

from .factory import incident

BIN = LabelBox(class_name="garbage_bin", box=(10, 20, 30, 40), origin="drawn")


def test_saves_are_added_never_updated_and_the_latest_wins(store, tmp_path, clock):
    case_id = store.post_incident(incident(tmp_path, "a")).case_id
    log = Annotations(store.db)
    first = log.save(case_id, action="boxes", reviewer="王审核", source="review-page", frame_sha256="a" * 64, boxes=[BIN], negatives=[], model="street-v2", at=clock())
    second = log.save(case_id, action="boxes", reviewer="李审核", source="review-page", frame_sha256="a" * 64, boxes=[], negatives=[BIN], at=clock.advance(minutes=1))
    store.transition(case_id, "rejected", actor="王审核", note="no", at=clock.advance(minutes=2))  # the transition logs its decision
    event = store.get(case_id).history[-1]
    decision = log.history(case_id)[-1]
    assert (decision.action, decision.reviewer, decision.source, decision.note, decision.at) == ("reject", "王审核", "api", "no", event.at)
    assert [a.id for a in log.history(case_id)] == [first.id, second.id, decision.id]
    assert log.history(case_id)[0].boxes == (BIN,) and log.history(case_id)[0].model == "street-v2" and log.history(case_id)[0].at == first.at
    latest = log.latest_boxes(case_id, "a" * 64)
    assert latest.id == second.id and latest.boxes == () and latest.negatives == (BIN,)  # the decision has no boxes: it does not hide them
    assert decision.boxes is None and decision.event_id == event.id
    assert log.latest_boxes(case_id, "b" * 64) is None


def test_bad_saves_are_refused(store, tmp_path):
    case_id = store.post_incident(incident(tmp_path, "a")).case_id
    log = Annotations(store.db)
    with pytest.raises(CaseNotFound):
        log.save(999, action="boxes", reviewer="x", source="api", frame_sha256="a" * 64, boxes=[])
    with pytest.raises(LedgerError, match="needs a reviewer"):
        log.save(case_id, action="boxes", reviewer=" ", source="api", frame_sha256="a" * 64, boxes=[])
    with pytest.raises(LedgerError, match="'dispatch' takes no boxes"):
        log.save(case_id, action="dispatch", reviewer="x", source="api", boxes=[BIN])
    with pytest.raises(LedgerError, match="boxes belong to a frame"):
        log.save(case_id, action="boxes", reviewer="x", source="api", boxes=[BIN])
    with pytest.raises(ValueError, match="x2 > x1"):
        LabelBox(class_name="person", box=(5, 5, 1, 9))
    assert log.history(case_id) == []


def test_every_review_decision_is_logged_in_its_own_transaction(store, tmp_path, clock, monkeypatch):
    """Whoever moves a case out of awaiting review (API, CLI, page: all through `transition`) leaves a decision row,
    written with the transition: if the row cannot be written, the case does not move."""
    from pipeline.cases import workflow as workflow_module

    log = Annotations(store.db)
    a = store.post_incident(incident(tmp_path, "a")).case_id
    store.transition(a, "dispatched", actor="office", owner="李娜", at=clock.advance(minutes=1), source="cli")
    store.transition(a, "rectified", actor="李娜", note="moved", at=clock.advance(minutes=2))  # not a review decision: no row
    [row] = log.history(a)
    assert (row.action, row.reviewer, row.source, row.event_id) == ("dispatch", "office", "cli", store.get(a).history[1].id)

    b = store.post_incident(incident(tmp_path, "b", point="elsewhere")).case_id

    def broken(*args, **kwargs):
        raise LedgerError("the log is down")

    monkeypatch.setattr(workflow_module, "new_row", broken)
    with pytest.raises(LedgerError, match="the log is down"):
        store.transition(b, "rejected", actor="王审核", note="no", at=clock.advance(minutes=3))
    assert store.get(b).status == "detected" and log.history(b) == []  # all or nothing


def test_a_batch_made_from_an_older_label_set_is_refused_whole(store, tmp_path):
    from pipeline.cases.annotations import StaleLabels, new_row

    case_id = store.post_incident(incident(tmp_path, "a")).case_id
    log = Annotations(store.db)
    seen = log.save(case_id, action="boxes", reviewer="王审核", source="review-page", frame_sha256="a" * 64, boxes=[BIN])
    newer = log.save(case_id, action="boxes", reviewer="李审核", source="review-page", frame_sha256="a" * 64, boxes=[])
    rows = [new_row(case_id, action="import", reviewer="cvat", source="import:yolo", frame_sha256=sha, boxes=[BIN]) for sha in ("b" * 64, "a" * 64)]
    with pytest.raises(StaleLabels, match=f"saved again \\(annotation {newer.id}\\) since annotation {seen.id}"):
        log.save_all(rows, expect={(case_id, "b" * 64): None, (case_id, "a" * 64): seen.id})
    assert [a.id for a in log.history(case_id)] == [seen.id, newer.id]
    assert len(log.save_all(rows, expect={(case_id, "b" * 64): None, (case_id, "a" * 64): newer.id})) == 2

"""The content-addressed evidence store, and retention that never deletes what a case references."""

from __future__ import annotations

import hashlib
import os
import time
from datetime import timedelta

import pytest

from pipeline.cases.errors import EvidenceError
from pipeline.cases.evidence_store import EvidenceStore
from pipeline.cases.retention import apply_retention

from .factory import evidence_file, incident, jpeg


def test_files_are_stored_under_their_sha256_and_ingest_is_idempotent(tmp_path):
    store = EvidenceStore(tmp_path / "ev")
    data = jpeg(1)
    sha = hashlib.sha256(data).hexdigest()
    src = tmp_path / "frame.jpg"
    src.write_bytes(data)
    a = store.put_file(src, sha)
    b = store.put_bytes(data)
    assert a.sha256 == b.sha256 == sha and a.size == len(data)
    assert a.path == tmp_path / "ev" / sha[:2] / sha and a.path.read_bytes() == data
    assert list(store.all()) == [sha] and store.verify(sha)
    assert not list((tmp_path / "ev").glob(".incoming-*"))  # no temporaries left behind


def test_a_file_that_does_not_match_its_hash_is_refused_and_not_stored(tmp_path):
    store = EvidenceStore(tmp_path / "ev")
    src = tmp_path / "frame.jpg"
    src.write_bytes(jpeg(2))
    with pytest.raises(EvidenceError, match=r"hashes to [0-9a-f]{64}, not the reported f{64}"):
        store.put_file(src, "f" * 64)
    with pytest.raises(EvidenceError, match="not a 64-digit"):
        store.put_file(src, "F" * 64)
    with pytest.raises(EvidenceError, match="empty file"):
        store.put_bytes(b"")
    with pytest.raises(EvidenceError, match="is a directory"):
        store.put_file(tmp_path)
    with pytest.raises(EvidenceError, match="not a sha256"):
        store.path("../../etc/passwd")
    assert list(store.all()) == []


def test_a_stored_file_altered_on_disk_fails_verification(tmp_path):
    store = EvidenceStore(tmp_path / "ev")
    f = store.put_bytes(jpeg(3))
    os.chmod(f.path, 0o644)
    f.path.write_bytes(jpeg(4))
    assert not store.verify(f.sha256)


def test_gc_keeps_referenced_and_young_files_and_deletes_old_orphans(tmp_path):
    store = EvidenceStore(tmp_path / "ev")
    keep, orphan, young = (store.put_bytes(jpeg(i)) for i in (10, 11, 12))
    old = time.time() - 7200
    for f in (keep, orphan):
        os.utime(f.path, (old, old))
    r = store.gc({keep.sha256}, grace_s=3600, dry_run=True)
    assert r.deleted == (orphan.sha256,) and orphan.path.exists()
    r = store.gc({keep.sha256}, grace_s=3600)
    assert r.deleted == (orphan.sha256,) and (r.kept, r.young_orphans) == (1, 1)
    assert keep.path.exists() and young.path.exists() and not orphan.path.exists()
    # re-ingesting an old unreferenced file refreshes it, so a posting in flight keeps it
    os.utime(young.path, (old, old))
    store.put_bytes(jpeg(12))
    assert store.gc(set(), grace_s=3600).deleted == (keep.sha256,)
    assert young.path.exists()


def test_retention_purges_long_closed_cases_but_never_a_file_still_referenced(make_store, tmp_path, clock):
    store = make_store(relapse_days=7, retention={"closed_days": 30, "orphan_grace_s": 0})
    shared = evidence_file(tmp_path, 500)  # the same frame is evidence for two cases
    old = store.post_incident(incident(tmp_path, "old", point="A", evidence=[shared, evidence_file(tmp_path, 501)])).case_id
    still_open = store.post_incident(incident(tmp_path, "open", point="B", type="garbage", evidence=[shared])).case_id
    rejected = store.post_incident(incident(tmp_path, "fp", point="C", evidence=[evidence_file(tmp_path, 502)])).case_id
    store.transition(rejected, "rejected", actor="reviewer", note="a parked cart")
    for step in ("dispatched", "rectified", "verified", "closed"):
        clock.advance(minutes=10)
        store.transition(old, step, actor="t", note="ok")
    files = {e.sha256 for c in store.list() for e in c.evidence}
    assert len(files) == 3

    early = apply_retention(store, clock.t + timedelta(days=29))
    assert early.purged_cases == () and early.gc.deleted == ()

    r = apply_retention(store, clock.t + timedelta(days=31))
    assert r.purged_cases == (old,) and r.purged_refs == 2
    only_old = hashlib.sha256(jpeg(501)).hexdigest()
    assert r.gc.deleted == (only_old,)
    assert not store.evidence.exists(only_old)
    assert store.list()
    for c in store.list():  # everything still referenced is still there
        assert c.evidence, c.id
        for e in c.evidence:
            assert e.purged or store.evidence.exists(e.sha256)
    c = store.get(old)
    assert all(e.purged for e in c.evidence) and c.history[-1].kind == "evidence_purged" and c.status == "closed"
    assert store.evidence.exists(shared.sha256) and store.get(still_open).evidence[0].purged is False
    assert not store.get(rejected).evidence[0].purged  # retraining material is kept


def test_retention_must_outlive_the_relapse_window():
    from pipeline.cases.config import LedgerConfig

    with pytest.raises(ValueError, match=r"closed_days \(3\) must be at least relapse_days"):
        LedgerConfig(relapse_days=7, retention={"closed_days": 3})

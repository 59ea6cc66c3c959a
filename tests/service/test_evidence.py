"""GET /evidence/{sha256}: the stored bytes, found by their hash, behind the key unless made public."""

from __future__ import annotations

import hashlib

from service.http.keys import Role

from .conftest import key_of, open_case, without_key


def test_evidence_is_served_byte_for_byte(client, street_jpeg):
    incident = open_case(client, street_jpeg)["incidents"][0]
    assert incident["evidence"]
    for ev in incident["evidence"]:
        r = client.get(f"/evidence/{ev['sha256']}")
        assert r.status_code == 200
        assert hashlib.sha256(r.content).hexdigest() == ev["sha256"]
        assert r.headers["content-type"] == ("application/json" if ev["kind"] == "metadata" else "image/jpeg")
        assert r.headers["etag"] == f'"{ev["sha256"]}"'


def test_bad_and_unknown_hashes(client):
    assert client.get("/evidence/" + "A" * 64).status_code == 422  # upper case is not how the store names files
    assert client.get("/evidence/../../etc/passwd").status_code == 404
    r = client.get("/evidence/" + "0" * 64)
    assert r.status_code == 404 and "no evidence" in r.json()["detail"]


def test_evidence_needs_a_reviewer_key_unless_public(make_client):
    keyed = make_client()
    sha = keyed.app.state.service.store.evidence.put_bytes(b"{}").sha256
    with without_key(keyed):
        assert keyed.get(f"/evidence/{sha}").status_code == 401
        assert keyed.get(f"/evidence/{sha}", headers=key_of(keyed, Role.CAMERA)).status_code == 403
        assert keyed.get(f"/evidence/{sha}", headers=key_of(keyed, Role.REVIEWER)).content == b"{}"
    public = make_client(evidence_public=True, role=None)
    assert public.get(f"/evidence/{sha}").status_code == 200
    assert public.get("/cases").status_code == 401

"""Roles, review sessions, failed-login limits, the no-key refusal and --insecure-open, the legacy master key,
and keys in URLs. The role matrix walks the app's own route list, so a new route must be classified here."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, text
from starlette.routing import Route

from pipeline.cli import main
from service.http.access_log import RedactSecrets, redact_path
from service.http.auth import LEGACY_WARNING, OPEN_WARNING, SESSION_COOKIE, NoKeysConfigured
from service.http.keys import KeyStore, Role, digest
from service.http.ratelimit import FailureLimiter
from tests.cases.factory import incident

from .conftest import KEY_NAMES, ORIGIN, T0, key_of, post_frame, without_key

# Who may call each route (admin may call all). Keyed by (method, path template); None: anyone.
ACCESS: dict[tuple[str, str], Role | None] = {
    ("GET", "/openapi.json"): None,
    ("GET", "/health"): None,
    ("GET", "/ready"): None,
    ("GET", "/docs"): None,
    ("GET", "/docs/oauth2-redirect"): None,
    ("GET", "/redoc"): None,
    ("POST", "/detect"): Role.CAMERA,
    ("POST", "/frames"): Role.CAMERA,
    ("POST", "/photos"): Role.CAMERA,
    ("GET", "/cases"): Role.REVIEWER,
    ("GET", "/cases/overdue"): Role.REVIEWER,
    ("GET", "/cases/{case_id}"): Role.REVIEWER,
    ("POST", "/cases/{case_id}/transition"): Role.REVIEWER,
    ("POST", "/cases/{case_id}/rectify"): Role.REVIEWER,
    ("GET", "/evidence/{sha256}"): Role.REVIEWER,
    ("GET", "/review"): Role.REVIEWER,
    ("POST", "/review/login"): None,
    ("POST", "/review/logout"): None,
    ("POST", "/review/{case_id}/dispatch"): Role.REVIEWER,
    ("POST", "/review/{case_id}/reject"): Role.REVIEWER,
    ("GET", "/review/{case_id}/label"): Role.REVIEWER,
    ("GET", "/review/{case_id}/boxes"): Role.REVIEWER,
    ("POST", "/review/{case_id}/boxes"): Role.REVIEWER,
    ("POST", "/review/bulk"): Role.REVIEWER,
    ("GET", "/overview"): Role.REVIEWER,
    ("GET", "/overview/figures"): Role.REVIEWER,
    ("GET", "/overview/cases"): Role.REVIEWER,
    ("GET", "/models"): Role.ADMIN,
    ("GET", "/models/current"): Role.ADMIN,
    ("PUT", "/models/current"): Role.ADMIN,
    ("GET", "/cameras"): Role.ADMIN,
    ("GET", "/cameras/{camera_id}/fixtures"): Role.ADMIN,
    ("POST", "/cameras/{camera_id}/fixtures"): Role.ADMIN,
    ("PUT", "/cameras/{camera_id}/fixtures/{fixture_id}"): Role.ADMIN,
    ("DELETE", "/cameras/{camera_id}/fixtures/{fixture_id}"): Role.ADMIN,
    ("GET", "/quarantine"): Role.ADMIN,
    ("GET", "/metrics"): Role.ADMIN,
}
DOCS = {("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/docs/oauth2-redirect"), ("GET", "/redoc")}
PARAMS = {"case_id": "1", "camera_id": "cam-1", "fixture_id": "no-such-fixture", "sha256": "0" * 64}


def routes(app) -> list[tuple[str, str]]:
    """Every (method, path) the app serves: its OpenAPI schema, plus the plain routes outside it (the docs)."""
    documented = {(m.upper(), path) for path, ops in app.openapi()["paths"].items() for m in ops}
    plain = {(m, r.path) for r in app.routes if isinstance(r, Route) for m in r.methods if m != "HEAD"}
    return sorted(documented | plain)


def url(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: PARAMS[m.group(1)], path)


def test_every_route_is_classified(client):
    assert set(routes(client.app)) == set(ACCESS), "a route was added or removed: say who may call it in ACCESS"


def test_role_matrix_every_route_every_role_and_no_key(client):
    denied = []
    with without_key(client):
        for method, path in routes(client.app):
            need = ACCESS[(method, path)]
            for role in (None, *Role):
                headers = key_of(client, role) if role else {}
                status = client.request(method, url(path), headers=headers, follow_redirects=False).status_code
                allowed = need is None or (role is not None and (role == Role.ADMIN or role == need))
                expected = "allowed" if allowed else ("401" if role is None else "403")
                got = "allowed" if status not in (401, 403) else str(status)
                if got != expected:
                    denied.append((method, path, role and role.value, status, expected))
    assert denied == []


def test_a_key_in_the_url_is_refused_on_every_route(client):
    assert set(routes(client.app)) - DOCS
    with without_key(client):
        for method, path in routes(client.app):
            if (method, path) in DOCS:
                continue  # static pages that never look at a key (the access log redacts it all the same)
            r = client.request(method, url(path), params={"api_key": client.keys[Role.ADMIN]}, follow_redirects=False)
            assert r.status_code == 401 and "never put a key in the URL" in r.json()["detail"], (method, path)
        assert client.get("/nowhere", params={"api_key": "x"}).status_code == 404  # unknown routes unchanged
        assert client.delete("/health").status_code == 405


def test_the_review_page_logs_in_with_a_session_not_the_key_and_records_the_reviewer(make_client, tmp_path):
    client = make_client(role=None)
    store = client.app.state.service.store
    a = store.post_incident(incident(tmp_path / "in", "a")).case_id
    page = client.get("/review")
    assert page.status_code == 401 and 'name="key"' in page.text and f'id="case-{a}"' not in page.text
    assert client.post("/review/login", data={"key": "so_nope"}).status_code == 401
    assert client.post("/review/login", data={"key": client.keys[Role.CAMERA]}).status_code == 403  # cameras cannot log in
    key = client.keys[Role.REVIEWER]
    ok = client.post("/review/login", data={"key": key}, follow_redirects=False)
    assert ok.status_code == 303
    cookie = ok.headers["set-cookie"]
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower() and key not in cookie
    token = client.cookies["streetorder_session"]
    with store.db.engine.connect() as conn:
        hashes = [r[0] for r in conn.execute(text("SELECT token_hash FROM review_sessions"))]
        keys_table = conn.execute(text("SELECT * FROM api_keys")).fetchall()
    assert hashes == [digest(token)] and key not in str(keys_table) and digest(key) in str(keys_table)
    html = client.get("/review").text
    assert f'id="case-{a}"' in html and KEY_NAMES[Role.REVIEWER] in html and "/review/logout" in html and 'name="actor"' not in html
    r = client.post(f"/review/{a}/dispatch", data={"owner": "张三", "actor": "someone else"}, follow_redirects=False)
    assert r.status_code == 303
    assert store.get(a).history[-1].actor == KEY_NAMES[Role.REVIEWER]  # from the session, not the form
    # the page's session is for the page (and its evidence images) only
    assert client.get("/cases").status_code == 401 and client.put("/models/current", json={"name": "coco-b"}).status_code == 401
    sha = store.evidence.put_bytes(b"{}").sha256
    assert client.get(f"/evidence/{sha}").status_code == 200
    out = client.post("/review/logout", follow_redirects=False)
    assert out.status_code == 303 and "streetorder_session" not in client.cookies
    with store.db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM review_sessions")).scalar() == 0
    client.cookies.set("streetorder_session", token)  # the old token no longer opens anything
    again = client.get("/review")
    assert again.status_code == 401 and "session has ended" in again.text


def test_sessions_expire_and_end_when_their_key_is_revoked(make_client, tmp_path):
    client = make_client(role=None, session_hours=1)
    keys: KeyStore = client.app.state.auth.keys
    keys.cache_s = 0  # see test_api_keys for the short cache of verified keys
    client.post("/review/login", data={"key": client.keys[Role.REVIEWER]})
    assert client.get("/review").status_code == 200
    real = keys.clock
    keys.clock = lambda: real() + timedelta(hours=1, seconds=1)
    assert client.get("/review").status_code == 401
    keys.clock = real
    client.post("/review/login", data={"key": client.keys[Role.REVIEWER]})
    assert client.get("/review").status_code == 200
    assert main(["keys", "revoke", "--name", KEY_NAMES[Role.REVIEWER], "--db", str(keys.db.url)]) == 0
    assert client.get("/review").status_code == 401
    assert client.get("/cases", headers={"X-API-Key": client.keys[Role.REVIEWER]}).status_code == 401


def test_failed_logins_are_limited_per_address_and_globally_but_a_right_key_always_passes(make_client):
    client = make_client(role=None, auth_failures_per_address=3, auth_failures_global=5)
    for _ in range(3):
        assert client.post("/review/login", data={"key": "so_guess"}).status_code == 401
    limited = client.post("/review/login", data={"key": "so_guess"})
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
    assert "this network address has sent too many wrong keys lately" in limited.text and "a right key still logs in" in limited.text
    api = client.get("/cases", headers={"X-API-Key": "so_guess"})
    assert api.status_code == 429  # the address's wrong keys, on every route
    assert "failed logins" not in api.json()["detail"] and api.json()["detail"].startswith("wrong or revoked key in the X-API-Key header")
    assert "a right key is still accepted" in api.json()["detail"]
    assert client.get("/cases", headers=key_of(client, Role.ADMIN)).status_code == 200  # its right keys still pass
    assert client.post("/review/login", data={"key": client.keys[Role.REVIEWER]}, follow_redirects=False).status_code == 303
    others = [TestClient(client.app, client=(f"10.0.0.{i}", 1000), headers={"Origin": ORIGIN}) for i in range(3)]
    for other in others[:2]:
        assert other.post("/review/login", data={"key": "so_guess"}).status_code == 401
    # 5 failed logins in all: every wrong login is refused for a while; a right one still logs in, keys still work
    everyone = others[2].post("/review/login", data={"key": "so_guess"})
    assert everyone.status_code == 429 and "too many failed review logins lately, from all addresses" in everyone.text and "a right key still logs in" in everyone.text
    assert others[2].post("/review/login", data={"key": client.keys[Role.REVIEWER]}, follow_redirects=False).status_code == 303
    assert others[2].get("/cases", headers=key_of(client, Role.REVIEWER)).status_code == 200


def test_wrong_api_keys_are_limited_per_address_and_never_globally():
    clock = [0.0]
    limiter = FailureLimiter(per_address=2, global_limit=2, window_s=60, clock=lambda: clock[0])
    limiter.fail("a")
    clock[0] = 10
    limiter.fail("a")
    assert limiter.check("a").retry_after == 50 and limiter.check("b") is None
    assert limiter.check("b", login=True) is None  # API-key failures do not feed the login form's global limit
    limiter.fail("b", login=True)
    limiter.fail("c", login=True)
    assert limiter.check("d", login=True).scope == "global" and limiter.check("d") is None
    clock[0] = 61
    assert limiter.check("a") is None  # the first failure aged out


def test_a_misconfigured_camera_behind_the_same_nat_does_not_stop_the_others(make_client, street_jpeg):
    """One address, many cameras: the one on a wrong key is refused (429 past the limit), the rest go on."""
    client = make_client(role=None, auth_failures_per_address=10)
    wrong = [post_frame(client, street_jpeg, T0, headers={"X-API-Key": "so_revoked-or-mistyped"}).status_code for _ in range(12)]
    assert wrong == [401] * 10 + [429] * 2
    ok = post_frame(client, street_jpeg, T0, headers=key_of(client, Role.CAMERA))
    assert ok.status_code == 200, ok.text
    assert client.get("/cases", headers=key_of(client, Role.REVIEWER)).status_code == 200


def test_wrong_api_keys_do_not_lock_reviewers_out_of_the_login_form(make_client):
    client = make_client(role=None, auth_failures_per_address=2, auth_failures_global=3)
    for i in range(5):  # 5 cameras on a revoked key: 10 failures, over the global login limit of 3
        camera = TestClient(client.app, client=(f"10.0.1.{i}", 1000))
        assert [camera.post("/detect", headers={"X-API-Key": "so_revoked"}).status_code for _ in range(3)] == [401, 401, 429]
    reviewer = TestClient(client.app, client=("10.0.2.1", 1000), headers={"Origin": ORIGIN})
    typo = reviewer.post("/review/login", data={"key": "so_typo"})
    assert typo.status_code == 401 and "wrong or revoked key" in typo.text  # a plain failure, not 429
    # a reviewer behind the cameras' address: a typo is told the truth (wrong keys only), the right key gets in
    behind = TestClient(client.app, client=("10.0.1.0", 1000), headers={"Origin": ORIGIN})
    told = behind.post("/review/login", data={"key": "so_typo"})
    assert told.status_code == 429 and "wrong keys are answered 429 for" in told.text and "a right key still logs in" in told.text
    assert "try again in" not in told.text and "failed logins" not in told.text
    assert behind.post("/review/login", data={"key": client.keys[Role.REVIEWER]}, follow_redirects=False).status_code == 303
    assert reviewer.post("/review/login", data={"key": client.keys[Role.REVIEWER]}, follow_redirects=False).status_code == 303


def test_no_keys_no_start_unless_insecure_open(make_client, caplog):
    with pytest.raises(NoKeysConfigured, match="streetorder keys create --role admin"):
        make_client(keys_in_ledger=False, role=None)
    client = make_client(keys_in_ledger=False, role=None, insecure_open=True)
    assert OPEN_WARNING in caplog.text
    ready = client.get("/ready").json()
    assert ready["warnings"] == [OPEN_WARNING] and ready["model"] == "coco"  # open: anyone is admin
    assert client.get("/models").status_code == 200
    assert OPEN_WARNING in client.get("/review").text


def test_insecure_open_closes_as_soon_as_a_key_exists(make_client, caplog, capsys):
    client = make_client(keys_in_ledger=False, role=None, insecure_open=True)
    auth = client.app.state.auth
    assert client.get("/models").status_code == 200 and auth.open
    db = str(auth.keys.db.url)
    assert main(["keys", "create", "--role", "admin", "--name", "first-admin", "--db", db]) == 0  # another process
    key = capsys.readouterr().out.strip()
    assert client.get("/models").status_code == 200  # within the ~2 s recheck it may still be open...
    auth._checked_at -= auth.recheck_s  # ...and once that has passed, it is not
    assert client.get("/models").status_code == 401 and client.put("/models/current", json={"name": "coco-b"}).status_code == 401
    assert "no longer applies" in caplog.text and not auth.open
    assert client.get("/ready").json() == {"ready": True, "warnings": []}
    assert client.get("/models", headers={"X-API-Key": key}).status_code == 200
    assert main(["keys", "revoke", "--name", "first-admin", "--db", db]) == 0
    auth._checked_at -= auth.recheck_s
    assert client.get("/models").status_code == 401  # closed for good, not reopened by revoking the last key


def test_session_checks_are_cached_briefly_and_end_at_once_on_logout_or_revoke(make_client):
    client = make_client(role=None)
    store, keys = client.app.state.service.store, client.app.state.auth.keys
    sha = store.evidence.put_bytes(b"{}").sha256
    statements: list[str] = []
    event.listen(keys.db.engine, "before_cursor_execute", lambda conn, cur, sql, *a: statements.append(sql))
    for end in (lambda: client.post("/review/logout"), lambda: keys.revoke(name=KEY_NAMES[Role.REVIEWER])):
        client.cookies.clear()
        client.post("/review/login", data={"key": client.keys[Role.REVIEWER]}, follow_redirects=False)
        token = client.cookies[SESSION_COOKIE]
        statements.clear()
        assert [client.get(f"/evidence/{sha}").status_code for _ in range(20)] == [200] * 20  # a review page's images
        assert len([s for s in statements if "review_sessions" in s]) == 1  # one session lookup, not 20 transactions
        end()
        client.cookies.set(SESSION_COOKIE, token)
        assert client.get(f"/evidence/{sha}").status_code == 401  # at once, not after the cache time


def test_the_legacy_master_key_is_an_admin_key_with_a_warning(make_client, caplog):
    client = make_client(keys_in_ledger=False, role=None, api_key="old-master-key-1")
    assert LEGACY_WARNING in caplog.text
    assert client.get("/models").status_code == 401
    legacy = {"X-API-Key": "old-master-key-1"}
    assert client.get("/models", headers=legacy).status_code == 200
    assert client.get("/ready", headers=legacy).json()["warnings"] == [LEGACY_WARNING]
    assert client.get("/ready").json() == {"ready": True, "warnings": []}
    assert client.post("/review/login", data={"key": "old-master-key-1"}).status_code == 403  # no sessions from it


def test_keys_cli_create_list_revoke(tmp_path, capsys):
    db = ["--db", f"sqlite:///{tmp_path}/k.db"]
    assert main(["keys", "create", "--role", "camera", "--name", "gate-cam", *db]) == 0
    key = capsys.readouterr().out.strip()
    assert key.startswith("so_") and len(key) > 40
    with pytest.raises(SystemExit):
        main(["keys", "create", "--role", "janitor", "--name", "x", *db])
    capsys.readouterr()
    assert main(["keys", "list", *db]) == 0
    listed = capsys.readouterr().out
    assert "gate-cam" in listed and "camera" in listed and key not in listed
    assert main(["keys", "revoke", "1", *db]) == 0
    assert main(["keys", "revoke", "1", *db]) == 1  # already revoked
    capsys.readouterr()
    assert main(["keys", "list", *db]) == 0 and "gate-cam" not in capsys.readouterr().out
    assert main(["keys", "list", "--all", *db]) == 0 and "revoked" in capsys.readouterr().out


FORGED = [
    {"Sec-Fetch-Site": "same-site", "Origin": f"{ORIGIN}:8081"},  # another port of the same host: same-site, not same-origin
    {"Sec-Fetch-Site": "same-site", "Origin": ORIGIN},  # the browser's word wins over a claimed Origin
    {"Sec-Fetch-Site": "cross-site"},
    {"Origin": f"{ORIGIN}:8081"},
    {"Origin": "null"},
    {"Referer": "http://evil.example/page"},
    {},  # neither: not a browser form post from this page
]


def test_cookie_authenticated_review_posts_must_come_from_the_service_s_own_origin(make_client, tmp_path):
    client = make_client(role=None)
    store = client.app.state.service.store
    a = store.post_incident(incident(tmp_path / "in", "a")).case_id
    assert client.post("/review/login", data={"key": client.keys[Role.REVIEWER]}, follow_redirects=False).status_code == 303
    del client.headers["Origin"]
    posts = [
        ("/review/login", {"data": {"key": client.keys[Role.ADMIN]}}), ("/review/logout", {}),
        (f"/review/{a}/dispatch", {"data": {"owner": "张三"}}), (f"/review/{a}/reject", {"data": {"reason": "not a bike", "fixture": "true"}}),
        (f"/review/{a}/boxes", {"json": {"boxes": []}}),
    ]
    for headers in FORGED:
        for path, body in posts:
            r = client.post(path, headers=headers, follow_redirects=False, **body)
            assert r.status_code == 403 and "cross-site request refused" in r.json()["detail"], (headers, path, r.status_code)
    assert store.get(a).status == "detected" and store.get(a).history[-1].actor != KEY_NAMES[Role.REVIEWER]
    assert client.get("/review").status_code == 200  # still logged in, as the same reviewer
    # the page's own origin, however the browser says it, passes the guard (and reaches the route: 404 here)
    for headers in ({"Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "none"}, {"Origin": ORIGIN}, {"Origin": "http://TESTSERVER:80"}, {"Referer": f"{ORIGIN}/review?offset=50"}):
        assert client.post("/review/4242/dispatch", data={"owner": "x"}, headers=headers).status_code == 404, headers
    # a script with a key in the header is not a browser's ambient credential: no Origin needed
    r = client.post(f"/review/{a}/dispatch", data={"owner": "张三"}, headers=key_of(client, Role.REVIEWER), follow_redirects=False)
    assert r.status_code == 303 and store.get(a).status == "dispatched"
    spec = client.get("/openapi.json").json()["paths"]["/review/{case_id}/reject"]["post"]["responses"]["403"]["content"]
    assert set(spec) == {"text/html", "application/json"}


def test_the_access_log_filter_redacts_encoded_names_and_any_key_shaped_value():
    key = "so_" + "Ab3-_x" * 7 + "Z"
    record = lambda path: logging.LogRecord("uvicorn.access", logging.INFO, "", 0, '%s - "%s %s HTTP/%s" %d', ("1.2.3.4:5", "GET", path, "1.1", 401), None)  # noqa: E731
    for path in (f"/cases?api%5Fkey={key}", f"/cases?API%5FKEY={key}&x=1", f"/cases?q={key}", f"/evidence/{key}", f"/cases?q=so%5F{key[3:]}", f"/cases?api_key={key}"):
        r = record(path)
        RedactSecrets().filter(r)
        line = r.getMessage()
        assert "REDACTED" in line and key[3:] not in line, line
    assert redact_path("/review?msg=so_far+so+good&type=x") == "/review?msg=so_far+so+good&type=x"  # words are not keys
    assert redact_path("/cases?api%5Fkey=short&status=detected") == "/cases?api%5Fkey=REDACTED&status=detected"

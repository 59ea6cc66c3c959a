"""Nothing acknowledged is lost: a real `streetorder serve` on the real PostgreSQL behind a TCP proxy that the
test cuts (a real outage, not a mock), stopped by kill -9 and by SIGTERM during the outage, then restarted:
every report it acknowledged (200 or 202) is in the ledger exactly once, and frame order survived."""

from __future__ import annotations

import signal
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from pipeline.db.engine import Database
from pipeline.db.urls import normalize_url
from service.http.keys import KeyStore, Role
from tests.cases.conftest import TABLES
from tests.support.ledger import ledger_rows
from tests.support.serve import ServeProcess

from .conftest import T0
from .tcp_proxy import TcpProxy

pytestmark = pytest.mark.slow


class Serve(ServeProcess):
    """`streetorder serve` as a child process, with the keys this test's requests send."""

    keys: dict[Role, str] = {}  # the camera's key for uploads, the admin's for /ready's details

    def post(self, path: str, **kw) -> httpx.Response:
        return httpx.post(f"{self.base}{path}", timeout=60, headers={"X-API-Key": self.keys[Role.CAMERA]}, **kw)

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.base}{path}", timeout=30, headers={"X-API-Key": self.keys[Role.ADMIN]})


@pytest.fixture
def pg_proxy(pg_url):
    """The session's PostgreSQL database, emptied, and a proxy to it; yields (proxy, URL through the proxy)."""
    engine = create_engine(normalize_url(pg_url))
    with engine.begin() as conn:
        for table in TABLES:
            conn.execute(text(f"DELETE FROM {table}"))
    engine.dispose()
    store = KeyStore(Database(pg_url, auto_upgrade=False))
    Serve.keys = {role: store.create(f"durability-{role.value}", role).key for role in (Role.CAMERA, Role.ADMIN)}
    store.db.dispose()
    u = make_url(normalize_url(pg_url))
    proxy = TcpProxy(u.host or "127.0.0.1", u.port or 5432)
    yield proxy, u.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    proxy.close()


def _photo(serve: Serve, jpeg: bytes, i: int) -> httpx.Response:
    """A patrol photo at its own place (1 km apart): each opens its own incident, so each is one report."""
    at = datetime.now(UTC) - timedelta(minutes=10) + timedelta(seconds=i)
    form = {"lat": f"{31.0 + 0.01 * i:.4f}", "lon": "121.0", "taken_at": at.isoformat(), "district": "黄浦区", "point": f"P{i}"}
    return serve.post("/photos", data=form, files={"image": (f"p{i}.jpg", jpeg, "image/jpeg")})


def _frame(serve: Serve, jpeg: bytes, at: datetime) -> httpx.Response:
    return serve.post("/frames", data={"camera_id": "cam-1", "taken_at": at.isoformat()}, files={"image": ("f.jpg", jpeg, "image/jpeg")})



def test_kill_9_and_sigterm_during_a_database_outage_lose_no_acknowledged_report(pg_proxy, pg_url, camera_config, models_root, tmp_path, street_jpeg):
    proxy, url = pg_proxy
    args = ["--config", str(camera_config), "--db", url, "--models-dir", str(models_root), "--threads", "1", "--evidence-dir", str(tmp_path / "engine"),
            "--journal", str(tmp_path / "journal.jsonl"), "--log-level", "warning"]
    env_ledger = tmp_path / "ledger.yaml"
    env_ledger.write_text(f"evidence_dir: {tmp_path / 'evidence'}\n")
    args += ["--ledger", str(env_ledger)]
    acked: list[str] = []  # incident ids the service acknowledged (200: in the ledger; 202: journaled)

    serve = Serve(args, tmp_path)
    assert _frame(serve, street_jpeg, T0).status_code == 200
    opened = _frame(serve, street_jpeg, T0 + timedelta(seconds=2))
    assert opened.status_code == 200, opened.text
    acked += [i["incident_id"] for i in opened.json()["incidents"]]

    assert serve.get("/ready").json()["backlog"] == 0  # the admin's key, checked while the database answers
    proxy.cut()  # the database is gone for the service; keys it has seen active still pass
    for i in range(3):
        r = _photo(serve, street_jpeg, i)
        assert r.status_code == 202, r.text
        assert "journaled" in r.json()["detail"] and r.json()["queued"] == i + 1
    assert _frame(serve, street_jpeg, T0 + timedelta(seconds=4)).status_code == 202
    ready = serve.get("/ready")
    assert ready.status_code == 503 and ready.json()["backlog"] == 3
    assert serve.stop(signal.SIGKILL) == -signal.SIGKILL  # no shutdown code runs

    proxy.restore()
    serve = Serve(args, tmp_path)  # replays the journal before it answers
    ledger = ledger_rows(pg_url)
    assert ledger["cases"] == 4 and ledger["created"] == 4 and len(ledger["incidents"]) == 4, ledger
    assert ledger["frames"]["cam-1"] == T0 + timedelta(seconds=4)
    ready = serve.get("/ready").json()
    assert ready["ready"] and ready["backlog"] == 0 and ready["quarantined"] == 0
    for at in (T0 + timedelta(seconds=4), T0 + timedelta(seconds=2)):  # processed before the restart: refused
        assert _frame(serve, street_jpeg, at).status_code == 409

    proxy.cut()
    for i in range(3, 5):
        assert _photo(serve, street_jpeg, i).status_code == 202
    assert serve.stop(signal.SIGTERM) in (0, -signal.SIGTERM)  # graceful (uvicorn re-raises the signal once shut down)
    assert "kept in the journal" in serve.output()

    proxy.restore()
    serve = Serve(args, tmp_path)
    ledger = ledger_rows(pg_url)
    assert ledger["cases"] == 6 and ledger["created"] == 6 and len(ledger["incidents"]) == len(set(ledger["incidents"])) == 6, ledger
    assert set(acked) <= set(ledger["incidents"])
    assert (tmp_path / "journal.jsonl").read_text() == ""
    ready = serve.get("/ready").json()
    assert ready["ready"] and ready["backlog"] == 0 and ready["quarantined"] == 0
    serve.stop(signal.SIGTERM)
    serve.stop(signal.SIGTERM)


def test_kill_9_mid_dwell_or_with_an_incident_open_and_each_camera_goes_on_with_its_state(pg_proxy, pg_url, camera_config, models_root, tmp_path, street_jpeg):
    """Three cameras see the same view in the same frames. cam-ref runs uninterrupted; the service is killed
    with kill -9 while cam-dwell is mid-dwell and cam-open has its incident open. cam-dwell's incident opens
    at the same frame time as cam-ref's (a lost state would open it a full dwell after the restart), and
    cam-open's is not reported again: no second case, no second 'opened'."""
    _, url = pg_proxy
    config = yaml.safe_load(camera_config.read_text())
    cam = config["cameras"][0]
    config["cameras"] = [
        {**cam, "id": cid, "location": {**cam["location"], "point": f"P{k}", "gps": {"lat": 30.29 + 0.01 * k, "lon": 120.16}}}
        for k, cid in enumerate(("cam-ref", "cam-dwell", "cam-open"))
    ]
    config["rules"]["non_motor_parking"]["min_dwell_s"] = 6  # frames every 2 s: it opens on the fourth frame
    camera_config.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    (tmp_path / "ledger.yaml").write_text(f"evidence_dir: {tmp_path / 'evidence'}\n")
    args = ["--config", str(camera_config), "--db", url, "--ledger", str(tmp_path / "ledger.yaml"), "--models-dir", str(models_root), "--threads", "1",
            "--evidence-dir", str(tmp_path / "engine"), "--journal", str(tmp_path / "journal.jsonl"), "--log-level", "warning"]
    times = [T0 + timedelta(seconds=2 * i) for i in range(7)]
    changes: dict[str, list[tuple[datetime, str]]] = {"cam-ref": [], "cam-dwell": [], "cam-open": []}

    def send(serve: Serve, camera_id: str, frames: list[datetime]) -> None:
        assert frames
        for at in frames:
            r = serve.post("/frames", data={"camera_id": camera_id, "taken_at": at.isoformat()}, files={"image": ("f.jpg", street_jpeg, "image/jpeg")})
            assert r.status_code == 200, r.text
            changes[camera_id] += [(at, i["change"]) for i in r.json()["incidents"]]

    serve = Serve(args, tmp_path)
    send(serve, "cam-ref", times)
    send(serve, "cam-dwell", times[:3])  # 4 s of the 6 s
    send(serve, "cam-open", times[:5])
    assert changes["cam-open"] == [(times[3], "opened")]
    assert serve.stop(signal.SIGKILL) == -signal.SIGKILL

    serve = Serve(args, tmp_path)
    send(serve, "cam-dwell", times[3:])
    send(serve, "cam-open", times[5:])
    serve.stop(signal.SIGTERM)
    assert changes["cam-ref"] == [(times[3], "opened")]  # the uninterrupted run
    assert changes["cam-dwell"] == changes["cam-open"] == changes["cam-ref"]
    ledger = ledger_rows(pg_url)
    assert ledger["cases"] == 3 and ledger["created"] == 3 and len(ledger["incidents"]) == 3, ledger
    assert {i.split("-non_motor")[0] for i in ledger["incidents"]} == {"cam-ref", "cam-dwell", "cam-open"}

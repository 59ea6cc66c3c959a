"""Not a test: prints, as JSON, how long the service takes to start with PostgreSQL up and with it cut off (a TCP
proxy that refuses, as in test_outage_start.py), and how long a journal of N patrol photos' reports takes to
land after the database returns (issue 22): `link_up_s` until the service has seen it again (the next try, every
2 s by default, then migration check, keys, frame times), `drain_s` until the journal is empty.

    PYTHONPATH=$PWD python -m tests.service.outage_drain 40

Uses a fresh database on $STREETORDER_TEST_PG (dropped at the end), the repository's yolo11n-coco model and the
service tests' camera config (a patrol photo of parked motorbikes is one report). The retry interval is the default 2 s, so the drain time includes the wait for the next try.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from pipeline.cases.config import LedgerConfig
from pipeline.db.engine import Database
from pipeline.db.urls import normalize_url
from service.http.app import create_app
from service.http.keys import KeyStore, Role
from service.settings import ServiceSettings
from tests.conftest import _pg_admin_conninfo
from tests.service.conftest import CAMERA_CONFIG, STREET
from tests.service.tcp_proxy import TcpProxy


def measure(n: int) -> dict:
    tmp = Path(tempfile.mkdtemp())
    name = f"so_drain_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_pg_admin_conninfo(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    admin = make_url(normalize_url(os.environ.get("STREETORDER_TEST_PG", "postgresql://root@127.0.0.1:5432/test")))
    direct = admin.set(database=name).render_as_string(hide_password=False)
    proxy = TcpProxy(admin.host or "127.0.0.1", admin.port or 5432)
    try:
        key = KeyStore(Database(direct)).create("drain-camera", Role.CAMERA).key
        url = admin.set(host="127.0.0.1", port=proxy.port, database=name).render_as_string(hide_password=False)
        cameras = tmp / "cameras.yaml"
        cameras.write_text(yaml.safe_dump(CAMERA_CONFIG, allow_unicode=True), encoding="utf-8")
        settings = ServiceSettings(camera_config=cameras, model="yolo11n-coco", ledger=LedgerConfig(database_url=url, evidence_dir=tmp / "evidence"),
                                   evidence_dir=tmp / "engine", journal=tmp / "journal.jsonl", threads=1)
        starts: dict[str, list[float]] = {"up": [], "down": []}
        for i in range(12):  # alternating, so both see the same load; the first (imports, model files cold) is dropped
            mode = "up" if i % 2 == 0 else "down"
            (proxy.restore if mode == "up" else proxy.cut)()
            t = time.perf_counter()
            with TestClient(create_app(settings)) as client:
                assert client.get("/health").status_code == 200
                starts[mode].append(time.perf_counter() - t)
        proxy.cut()
        jpeg = STREET.read_bytes()
        with TestClient(create_app(settings), headers={"X-API-Key": key}) as client:
            state = client.app.state.service
            answers = []
            for i in range(n):
                at = datetime.now(UTC) - timedelta(minutes=30) + timedelta(seconds=i)
                form = {"lat": f"{31.0 + 0.01 * i:.4f}", "lon": "121.0", "taken_at": at.isoformat(), "point": f"P{i}"}
                answers.append(client.post("/photos", data=form, files={"image": ("p.jpg", jpeg, "image/jpeg")}))
            assert {r.status_code for r in answers} <= {200, 202}, [r.text for r in answers if r.status_code not in (200, 202)]  # 200: nothing found
            backlog = state.live.backlog
            t = time.perf_counter()
            proxy.restore()
            while not state.link.up:
                time.sleep(0.005)
            link_s = time.perf_counter() - t
            while state.live.backlog:
                time.sleep(0.005)
            drain_s = time.perf_counter() - t
        engine = create_engine(normalize_url(direct))
        with engine.connect() as conn:
            cases = conn.execute(text("SELECT count(*) FROM cases")).scalar()
        engine.dispose()
        return {
            "start_up_s": [round(x, 3) for x in starts["up"][1:]], "start_down_s": [round(x, 3) for x in starts["down"]],
            "start_up_median_s": round(statistics.median(starts["up"][1:]), 3), "start_down_median_s": round(statistics.median(starts["down"]), 3),
            "photos": n, "journaled_reports": backlog, "cases_after": cases, "link_up_s": round(link_s, 3), "drain_s": round(drain_s, 3), "reports_per_s_after_link_up": round(backlog / max(drain_s - link_s, 1e-9), 1), "load": os.getloadavg()[0],
        }
    finally:
        proxy.close()
        with psycopg.connect(_pg_admin_conninfo(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    print(json.dumps(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 40)))

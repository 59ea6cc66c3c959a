"""Service fixtures: a tmp models dir (two copies of the COCO ONNX model and a broken one), a small camera
config, a SQLite ledger from a migrated template with one API key per role, and a TestClient per test (sending
the admin key, and the Origin of the service's own pages, unless told otherwise)."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from pipeline.cases.config import LedgerConfig
from pipeline.db.engine import Database
from service.http.app import create_app
from service.http.keys import KeyStore, Role
from service.settings import ServiceSettings
from tests.conftest import STREETS_IN

CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 21, 9, 0, tzinfo=CST)
# A real street photo with parked motorbikes; COCO finds the one at MOTO (score 0.79) with its bottom centre
# inside the test camera's no_parking zone, and nothing else's.
STREET = STREETS_IN / "images" / "IMG20240615122056_jpg.jpg"
MOTO = (131.8, 198.5, 307.1, 424.0)
ORIGIN = "http://testserver"  # TestClient's base URL
KEY_NAMES = {Role.CAMERA: "cam-gate-1", Role.REVIEWER: "王审核", Role.ADMIN: "ops-admin"}

CAMERA_CONFIG = {
    "fixtures_file": "fixtures.yaml",
    "cameras": [
        {
            "id": "cam-1",
            "name": "school gate",
            "location": {"district": "拱墅区", "street": "米市巷街道", "point": "学校东门", "gps": {"lat": 30.2936, "lon": 120.1614}},
            "owner": "李娜",
            "resolution": [640, 640],
            "zones": [{"id": "np", "kind": "no_parking", "polygon": [[150, 380], [290, 380], [290, 470], [150, 470]]}],
        },
        {"id": "cam-2", "location": {"district": "西湖区", "point": "P2"}, "resolution": [640, 640]},
    ],
    "rules": {"non_motor_parking": {"min_dwell_s": 2, "min_count": 1}},
    "patrol": {"district": "上城区"},
}


@pytest.fixture(scope="session")
def models_root(tmp_path_factory, coco_onnx) -> Path:
    """models/: coco (current), coco-b (a second copy for swaps), broken (not an ONNX file), no-onnx (a .pt only)."""
    root = tmp_path_factory.mktemp("models")
    for name in ("coco", "coco-b"):
        (root / name).mkdir()
        shutil.copy(coco_onnx, root / name / "model.onnx")
    (root / "coco" / "card.json").write_text(json.dumps({"name": "coco", "architecture": "YOLO11n", "imgsz": 640, "classes": ["person", "bicycle"], "metrics": {"garbage_cn_val": {"map50": 0.1, "map50_95": 0.05}}}))
    (root / "broken").mkdir()
    (root / "broken" / "model.onnx").write_bytes(b"this is not an onnx model")
    (root / "no-onnx").mkdir()
    (root / "no-onnx" / "model.pt").write_bytes(b"pt")
    (root / "CURRENT").write_text("coco\n")
    return root


@pytest.fixture(autouse=True)
def _no_repo_models(monkeypatch, models_root):
    """Nothing in these tests may read or write the repository's models/ (CURRENT included)."""
    monkeypatch.setenv("STREETORDER_MODELS", str(models_root))
    for var in ("STREETORDER_CONFIG", "STREETORDER_DB", "STREETORDER_API_KEY", "STREETORDER_MODEL"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="session")
def ledger_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ledger-template") / "ledger.db"
    Database(f"sqlite:///{path}").dispose()
    return path


@pytest.fixture(scope="session")
def street_jpeg() -> bytes:
    return STREET.read_bytes()


@pytest.fixture
def camera_config(tmp_path) -> Path:
    path = tmp_path / "cameras.yaml"
    path.write_text(yaml.safe_dump(CAMERA_CONFIG, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def make_client(tmp_path, camera_config, models_root, ledger_template) -> Iterator[Callable[..., TestClient]]:
    """Start apps on this test's config and ledger; keyword arguments override ServiceSettings fields,
    `ledger_update` LedgerConfig fields. The ledger gets one key per role (`client.keys[role]`, names in
    KEY_NAMES) unless `keys=False`; the client sends the key of `role` (None: no key)."""
    clients: list[TestClient] = []
    keys: dict[Role, str] = {}

    def make(ledger_update: dict | None = None, *, role: Role | None = Role.ADMIN, keys_in_ledger: bool = True, **overrides) -> TestClient:
        db = tmp_path / "ledger.db"
        if not db.exists():
            shutil.copy(ledger_template, db)
            if keys_in_ledger:
                store = KeyStore(Database(f"sqlite:///{db}", auto_upgrade=False))
                keys.update({r: store.create(name, r).key for r, name in KEY_NAMES.items()})
                store.db.dispose()
        ledger = LedgerConfig(database_url=f"sqlite:///{db}", evidence_dir=tmp_path / "evidence", auto_upgrade=False, **(ledger_update or {}))
        fields = {"camera_config": camera_config, "ledger": ledger, "models_dir": models_root, "evidence_dir": tmp_path / "engine-evidence", "journal": tmp_path / "journal.jsonl", "threads": 1} | overrides
        # a browser sends its page's Origin with every form post (csrf.py); the tests that forge one remove it
        headers = {"Origin": ORIGIN} | ({"X-API-Key": keys[role]} if role and keys else {})
        client = TestClient(create_app(ServiceSettings(**fields)), headers=headers)
        client.keys = keys
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.__exit__(None, None, None)


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()


@contextmanager
def without_key(client: TestClient) -> Iterator[TestClient]:
    """The client with no default key header, for anonymous requests."""
    saved = client.headers.pop("X-API-Key", None)
    try:
        yield client
    finally:
        if saved is not None:
            client.headers["X-API-Key"] = saved


def key_of(client: TestClient, role: Role) -> dict[str, str]:
    """Headers that send `role`'s key instead of the default one."""
    return {"X-API-Key": client.keys[role]}


def post_frame(client: TestClient, jpeg: bytes, at: datetime, camera_id: str = "cam-1", **kwargs):
    return client.post("/frames", data={"camera_id": camera_id, "taken_at": at.isoformat()}, files={"image": ("frame.jpg", jpeg, "image/jpeg")}, **kwargs)


def open_case(client: TestClient, jpeg: bytes, start: datetime = T0) -> dict:
    """Two frames 2 s apart: the parked motorbike has stood its dwell and a case is opened. Returns the frame answer."""
    assert post_frame(client, jpeg, start).status_code == 200
    second = post_frame(client, jpeg, start + timedelta(seconds=2))
    assert second.status_code == 200, second.text
    body = second.json()
    assert [i["change"] for i in body["incidents"]] == ["opened"], body
    return body


def metric(text: str, name: str, labels: str = "") -> float:
    """Sum of a series' samples whose labels contain `labels`."""
    total = 0.0
    for line in text.splitlines():
        m = re.match(rf"^{re.escape(name)}(\{{.*\}})?\s+(\S+)$", line)
        if m and labels in (m.group(1) or ""):
            total += float(m.group(2))
    return total

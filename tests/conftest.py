"""Shared fixtures. Tests read real data from ../shared (CI has it beside the clone)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from pipeline.db.engine import Database
from pipeline.db.urls import normalize_url

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("STREETORDER_FRAME_POOL", "off")  # no test fills the repo's var/frames; test_retrain_loop.py gives the pool its own folder
os.environ.setdefault("STREETORDER_BACKEND_CACHE", "off")  # no test writes the repo's var/backend-auto.json; tests/detect/test_variants.py gives it a file

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
GARBAGE_CN = SHARED / "data" / "garbage-cn"
STREETS_IN = SHARED / "data" / "streets-in"
VIDEO = SHARED / "data" / "video" / "vtest.avi"
COCO_PT = SHARED / "models" / "yolo11n-coco.pt"

if not GARBAGE_CN.is_dir():  # a missing data folder must fail loudly, not skip tests
    raise RuntimeError(f"tests need the shared data at {SHARED}")


def val_images(n: int) -> list[Path]:
    return sorted((GARBAGE_CN / "val" / "images").glob("*.jpg"))[:n]


@pytest.fixture(scope="session")
def coco_onnx(tmp_path_factory) -> Path:
    """The COCO model exported to ONNX once per session (needs the train extra)."""
    from ultralytics import YOLO

    folder = tmp_path_factory.mktemp("coco")
    pt = folder / "model.pt"
    pt.write_bytes(COCO_PT.read_bytes())
    exported = Path(YOLO(str(pt)).export(format="onnx", imgsz=640, dynamic=True, simplify=True, opset=17, device="cpu"))
    assert exported == folder / "model.onnx"
    return exported


# ---- PostgreSQL: one fresh database per test session, dropped at the end ---------------------------------

PG_ADMIN = os.environ.get("STREETORDER_TEST_PG", "postgresql://root@127.0.0.1:5432/test")


def _pg_admin_conninfo() -> str:
    u = make_url(normalize_url(PG_ADMIN))
    return f"host={u.host or '127.0.0.1'} port={u.port or 5432} user={u.username or 'root'} dbname={u.database or 'test'}" + (f" password={u.password}" if u.password else "")


@pytest.fixture(scope="session")
def pg_url():
    name = f"so_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_pg_admin_conninfo(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(normalize_url(PG_ADMIN)).set(database=name).render_as_string(hide_password=False)
    Database(url).dispose()  # migrate once
    yield url
    with psycopg.connect(_pg_admin_conninfo(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

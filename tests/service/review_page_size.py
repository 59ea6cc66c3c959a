"""Not a test: prints the review page's size and time with N waiting cases as JSON (issue 8 saw 4.75 MB for 2629).

    PYTHONPATH=$PWD python -m tests.service.review_page_size 2629

Runs on a checkout from before role keys too (then without a key), for a side-by-side figure.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml
from fastapi.testclient import TestClient

from pipeline.cases.config import LedgerConfig
from pipeline.db.engine import Database
from service.http.app import create_app
from service.settings import ServiceSettings
from tests.cases.factory import incident
from tests.service.conftest import CAMERA_CONFIG


def measure(n: int) -> dict:
    tmp = Path(tempfile.mkdtemp())
    try:
        (tmp / "cams.yaml").write_text(yaml.safe_dump(CAMERA_CONFIG, allow_unicode=True), encoding="utf-8")
        url = f"sqlite:///{tmp}/ledger.db"
        try:
            from service.http.keys import KeyStore

            headers = {"X-API-Key": KeyStore(Database(url)).create("bench", "reviewer").key}
        except ImportError:
            headers = None
        ledger = LedgerConfig(database_url=url, evidence_dir=tmp / "evidence")
        app = create_app(ServiceSettings(camera_config=tmp / "cams.yaml", ledger=ledger, model="does-not-exist", evidence_dir=tmp / "engine"))
        for i in range(n):
            app.state.service.store.post_incident(incident(tmp / "in", f"i{i}", point=f"P-{i}"))
        client = TestClient(app, headers=headers)
        client.get("/review")  # warm up templates and connections
        t = time.perf_counter()
        page = client.get("/review")
        return {"cases": n, "page_bytes": len(page.content), "page_s": round(time.perf_counter() - t, 3), "cases_on_page": page.text.count('class="case"')}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    print(json.dumps(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 2629)))

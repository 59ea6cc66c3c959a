"""Not a test: prints the review page's size and time with N waiting cases (issue 8 saw 4.75 MB for 2629).

    PYTHONPATH=$PWD python -m tests.service.review_page_size 2629
"""
import sys, time, tempfile, shutil
from pathlib import Path
from fastapi.testclient import TestClient
from pipeline.cases.config import LedgerConfig
from pipeline.cases.db import Database
from service.app import create_app
try:
    from service.keys import KeyStore
except ImportError:  # a checkout from before role keys (for a side-by-side run)
    KeyStore = None
from service.settings import ServiceSettings
from tests.cases.factory import incident
from tests.service.conftest import CAMERA_CONFIG
import yaml

n = int(sys.argv[1]) if len(sys.argv) > 1 else 2629
tmp = Path(tempfile.mkdtemp())
(tmp / "cams.yaml").write_text(yaml.safe_dump(CAMERA_CONFIG, allow_unicode=True))
url = f"sqlite:///{tmp}/l.db"
key = KeyStore(Database(url)).create("r", "reviewer").key if KeyStore else None
ledger = LedgerConfig(database_url=url, evidence_dir=tmp / "ev")
app = create_app(ServiceSettings(camera_config=tmp / "cams.yaml", ledger=ledger, model="does-not-exist", evidence_dir=tmp / "eng"))
store = app.state.service.store
t = time.perf_counter()
for i in range(n):
    store.post_incident(incident(tmp / "in", f"i{i}", point=f"P-{i}"))
print(f"seeded {n} in {time.perf_counter() - t:.1f}s", file=sys.stderr)
c = TestClient(app, headers={"X-API-Key": key} if key else None)
c.get("/review")
t = time.perf_counter(); r = c.get("/review"); dt = time.perf_counter() - t
last = c.get("/review", params={"offset": (n // 50) * 50}); 
print({"cases": n, "page1_bytes": len(r.content), "page1_s": round(dt, 3), "cases_on_page": r.text.count('class="case"'), "last_page_status": last.status_code})
shutil.rmtree(tmp)

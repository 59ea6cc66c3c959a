"""The serving path never imports torch: the app is built and used in a fresh interpreter, then its modules
are checked. (The test process itself has torch loaded by the ONNX export fixture, so it must be a subprocess.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO

from .conftest import STREET, T0

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from fastapi.testclient import TestClient
    from pipeline.cases.config import LedgerConfig
    from pipeline.db.engine import Database
    from service.http.app import create_app
    from service.http.keys import KeyStore
    from service.settings import ServiceSettings

    cfg, models, tmp, image, taken_at = sys.argv[1:]
    ledger = LedgerConfig(database_url=f"sqlite:///{tmp}/ledger.db", evidence_dir=Path(tmp) / "evidence")
    settings = ServiceSettings(camera_config=cfg, models_dir=models, ledger=ledger, evidence_dir=Path(tmp) / "engine", threads=1)
    data = Path(image).read_bytes()
    key = KeyStore(Database(ledger.database_url)).create("ops", "admin").key
    with TestClient(create_app(settings), headers={"X-API-Key": key}) as client:
        codes = [
            client.get("/ready").status_code,
            client.post("/detect", files={"image": ("s.jpg", data, "image/jpeg")}).status_code,
            client.post("/frames", data={"camera_id": "cam-1", "taken_at": taken_at}, files={"image": ("s.jpg", data, "image/jpeg")}).status_code,
            client.get("/review").status_code,
            client.put("/models/current", json={"name": "coco-b"}).status_code,
        ]
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision", "ultralytics"))
    print(json.dumps({"codes": codes, "heavy": heavy}), flush=True)
    # What is checked is above. Leave without the interpreter's teardown of native thread pools: OpenVINO's
    # (probed by --backend auto on the model swap) aborted it once in a CI run ("terminate called without an
    # active exception"), after the app had shut down cleanly.
    import os
    os._exit(0)
    """
)


def test_serving_path_never_imports_torch(camera_config, models_root, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(camera_config), str(models_root), str(tmp_path), str(STREET), T0.isoformat()],
        capture_output=True, text=True, env=env, timeout=90, cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["codes"] == [200, 200, 200, 200, 200]
    assert result["heavy"] == []

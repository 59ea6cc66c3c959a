"""ultralytics' own log stays off stdout, where `--json` commands print their figures."""

import os
import subprocess
import sys

import pytest

from pipeline.paths import REPO

pytest.importorskip("ultralytics")


def test_ultralytics_logs_to_stderr_on_a_machine_without_its_settings(tmp_path):
    """On a fresh machine ultralytics creates its settings file on import and says so; that line came before the
    JSON of `streetorder bench batch --json`. Imported through `import_yolo`, its log goes to stderr."""
    env = {**os.environ, "YOLO_CONFIG_DIR": str(tmp_path), "YOLO_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    code = (
        "from pipeline.detect.ultralytics import import_yolo\n"
        "import_yolo()\n"
        "import logging; logging.getLogger('ultralytics').info('after import')\n"
        "print('{}')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300, check=True)
    assert done.stdout == "{}\n"
    assert "Creating new Ultralytics Settings" in done.stderr and "after import" in done.stderr

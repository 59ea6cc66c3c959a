"""`streetorder detect` end to end, as a user runs it: real files, bad files, JSON, annotated output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from tests.conftest import REPO, val_images

STREETORDER = [str(Path(sys.executable).parent / "streetorder")]  # the installed console script, as users run it


def run(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*STREETORDER, *args], cwd=REPO, capture_output=True, text=True, timeout=300, **kw)


@pytest.fixture
def mixed_folder(tmp_path) -> Path:
    folder = tmp_path / "mixed"
    (folder / "sub").mkdir(parents=True)
    good = val_images(3)
    for p in good[:2]:
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / "sub" / good[2].name).write_bytes(good[2].read_bytes())
    (folder / "zero.jpg").write_bytes(b"")
    (folder / "cut.jpg").write_bytes(good[0].read_bytes()[:5000])
    (folder / "garbage.png").write_bytes(os.urandom(4096))
    (folder / "readme.txt").write_text("not an image")
    return folder


@pytest.mark.slow
def test_mixed_folder_reports_each_bad_file_and_carries_on(mixed_folder, coco_onnx):
    r = run("detect", str(mixed_folder), "--json", "--model", str(coco_onnx))
    assert r.returncode == 1, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    by_name = {Path(x["path"]).name: x for x in rows}
    assert len(rows) == 7
    errors = {n: x["error"] for n, x in by_name.items() if "error" in x}
    assert set(errors) == {"zero.jpg", "cut.jpg", "garbage.png", "readme.txt"}
    assert "empty" in errors["zero.jpg"] and "truncated" in errors["cut.jpg"]
    assert "unsupported" in errors["readme.txt"] and "not a readable image" in errors["garbage.png"]
    good = [x for x in rows if "detections" in x]
    assert len(good) == 3 and any(x["detections"] for x in good)
    d = next(x for x in good if x["detections"])["detections"][0]
    assert set(d) == {"class_id", "class_name", "score", "box"} and len(d["box"]) == 4
    for name in errors:
        assert name in r.stderr


@pytest.mark.slow
def test_all_good_exits_zero_and_saves_annotated(tmp_path, coco_onnx):
    out = tmp_path / "out"
    images = [str(p) for p in val_images(2)]
    r = run("detect", *images, "--save", str(out), "--model", str(coco_onnx))
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 2
    saved = sorted(out.glob("*.jpg"))
    assert [p.stem for p in saved] == sorted(Path(p).stem for p in images)
    original = cv2.imread(images[0])
    drawn = cv2.imread(str(saved[0]))
    assert drawn.shape == original.shape and (drawn != original).any()


@pytest.mark.slow
def test_unknown_model_is_a_clear_error():
    r = run("detect", str(val_images(1)[0]), "--model", "no-such-model")
    assert r.returncode == 2 and "unknown model 'no-such-model'" in r.stderr


@pytest.mark.slow
def test_serving_path_imports_no_torch(coco_onnx):
    r = run("detect", str(val_images(1)[0]), "--json", "--model", str(coco_onnx), env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"})
    assert r.returncode == 0, r.stderr
    imported = [line.split("|")[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")]
    assert len(imported) > 100  # the import log really was captured
    assert not [m for m in imported if m.split(".")[0] in ("torch", "torchvision", "ultralytics")]


@pytest.mark.slow
@pytest.mark.parametrize("command", [[], ["detect"], ["evaluate"], ["train"]])
def test_every_command_has_help(command):
    r = run(*command, "--help")
    assert r.returncode == 0 and "usage: streetorder" in r.stdout

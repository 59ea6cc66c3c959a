"""Evidence files: best frame, crop, context and metadata, each named by and recorded with its sha256, with
faces and plates blurred in every image."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path

import cv2
import numpy as np

from pipeline.config import EvidenceConfig
from pipeline.domain import Location
from pipeline.evidence import EvidenceWriter, privacy_regions
from pipeline.source.frames import Frame
from pipeline.incidents import Incident, Snapshot

from .factory import T0, camera, dets, engine, tracked

LOCATION = Location(district="西湖区", point="P1")
PILE = (250, 300, 350, 380)
PERSON = (100, 200, 160, 400)  # head: rows 200..260 (head_fraction 0.3)


def checkerboard() -> np.ndarray:
    """Sharp detail that JPEG keeps and a blur destroys."""
    y, x = np.mgrid[0:480, 0:640]
    return np.repeat((((x // 16 + y // 16) % 2) * 160 + 40).astype(np.uint8)[..., None], 3, axis=2)


def incident(image: np.ndarray | None = None, box=PILE, camera_id: str | None = "cam", objs=None) -> Incident:
    """A garbage incident whose best snapshot holds `objs` (default: the pile, member 0, and a person beside it)."""
    d = tracked(*(objs or [("garbage", box, 0.7, 300), ("person", PERSON, 0.9, 300)]))
    inc = Incident("cam-garbage-walk-20261120T215500", "garbage", "walk", box, T0, T0, 1, 1, 0.7, camera_id=camera_id)
    inc.offer(Snapshot(checkerboard() if image is None else image, T0, box, d, (0,), 1.0, d))
    return inc


def polygons():
    cam = camera()
    return [(z.id, z.kind, np.array(z.polygon, dtype=np.int64)) for z in cam.zones]


def write(tmp_path, inc: Incident | None = None, **cfg):
    return EvidenceWriter(EvidenceConfig(**cfg), tmp_path).write(inc or incident(), LOCATION, polygons())


def read(files, kind: str) -> np.ndarray:
    return cv2.imread(next(f.path for f in files if f.kind == kind)).astype(int)


def changed(a: np.ndarray, b: np.ndarray, rows: slice, cols: slice) -> float:
    return float(np.abs(a[rows, cols] - b[rows, cols]).mean())


# ---- through the engine ---------------------------------------------------------------------------------


def test_evidence_files_blur_and_hashes(tmp_path):
    frame_img = checkerboard()
    e = engine(tmp_path)
    reports = []
    for t in range(0, 200, 2):
        d = dets(("garbage", (250, 300, 350, 380), 0.7), ("person", (100, 200, 160, 400), 0.9))
        reports += e.process(Frame(frame_img, T0 + timedelta(seconds=t), "cam"), d).reports
    opened = reports[0]
    kinds = {f.kind: f for f in opened.evidence}
    assert set(kinds) == {"best_frame", "crop", "context", "metadata"} and opened.evidence
    for f in opened.evidence:
        assert hashlib.sha256(Path(f.path).read_bytes()).hexdigest() == f.sha256
        assert Path(f.path).is_relative_to(tmp_path)
    import cv2

    best = cv2.imread(kinds["best_frame"].path).astype(int)
    head = (slice(200, 260), slice(100, 160))  # top 30% of the person box
    body = (slice(300, 400), slice(400, 600))
    assert np.abs(best[head] - frame_img[head]).mean() > 25  # blurred
    assert np.abs(best[body] - frame_img[body]).mean() < 12  # only JPEG noise elsewhere
    crop = cv2.imread(kinds["crop"].path)
    assert 100 <= crop.shape[1] <= 200 and 80 <= crop.shape[0] <= 160
    meta = json.loads(Path(kinds["metadata"].path).read_text())
    assert meta["camera_id"] == "cam" and meta["location"]["district"] == "西湖区"
    assert meta["files"]["crop"]["sha256"] == kinds["crop"].sha256


def test_people_the_rules_ignore_are_still_blurred(tmp_path):
    """A person in an ignore mask, or too faint to start a track, never reaches the rules but is in the picture."""
    frame_img = checkerboard()
    e = engine(tmp_path)
    reports = []
    for t in range(0, 200, 2):
        d = dets(("garbage", (250, 300, 350, 380), 0.7), ("person", (570, 220, 630, 420), 0.9), ("person", (100, 200, 160, 400), 0.15))
        reports += e.process(Frame(frame_img, T0 + timedelta(seconds=t), "cam"), d).reports
    import cv2

    best = cv2.imread(next(f.path for f in reports[0].evidence if f.kind == "best_frame")).astype(int)
    for head in ((slice(220, 280), slice(570, 630)), (slice(200, 260), slice(100, 160))):
        assert np.abs(best[head] - frame_img[head]).mean() > 25


def test_blur_can_be_switched_off(tmp_path):
    frame_img = checkerboard()
    e = engine(tmp_path, "evidence: {blur_faces: false, blur_plates: false}\n")
    reports = []
    for t in range(0, 200, 2):
        d = dets(("garbage", (250, 300, 350, 380), 0.7), ("person", (100, 200, 160, 400), 0.9))
        reports += e.process(Frame(frame_img, T0 + timedelta(seconds=t), "cam"), d).reports
    import cv2

    best = cv2.imread(next(f.path for f in reports[0].evidence if f.kind == "best_frame")).astype(int)
    assert np.abs(best[200:260, 100:160] - frame_img[200:260, 100:160]).mean() < 12


# ---- the writer on one incident -------------------------------------------------------------------------


def test_files_are_named_by_their_hash_in_a_folder_per_camera_and_incident(tmp_path):
    files = write(tmp_path)
    assert [f.kind for f in files] == ["best_frame", "crop", "context", "metadata"]
    folder = tmp_path / "cam" / "cam-garbage-walk-20261120T215500"
    for f in files:
        data = Path(f.path).read_bytes()
        assert f.sha256 == hashlib.sha256(data).hexdigest()
        ext = "json" if f.kind == "metadata" else "jpg"
        assert Path(f.path) == folder / f"{f.kind}-{f.sha256[:12]}.{ext}"
        assert f.taken_at == T0
    assert sorted(p.name for p in folder.iterdir()) == sorted(Path(f.path).name for f in files)  # no temporary files left
    # the same incident written again: the same files, nothing added
    assert write(tmp_path) == files and len(list(folder.iterdir())) == 4


def test_a_better_best_frame_is_a_new_file_beside_the_old_one(tmp_path):
    first = write(tmp_path)
    second = write(tmp_path, incident(image=checkerboard() + 10))  # a later, different frame
    assert Path(first[0].path).exists() and first[0].path != second[0].path
    assert len(list(Path(first[0].path).parent.glob("best_frame-*.jpg"))) == 2


def test_the_crop_is_the_box_with_its_margin_clipped_to_the_frame(tmp_path):
    crop = read(write(tmp_path), "crop")
    assert crop.shape == (128, 160, 3)  # 100 x 80 box, 30% on each side
    assert read(write(tmp_path / "tight", crop_margin=0), "crop").shape == (80, 100, 3)
    at_edge = incident(box=(0, 300, 100, 380), objs=[("garbage", (0, 300, 100, 380), 0.7, 300)])
    assert read(write(tmp_path / "edge", at_edge), "crop").shape == (128, 130, 3)  # no margin left of x=0


def test_faces_are_blurred_in_the_best_frame_and_the_context(tmp_path):
    files = write(tmp_path)
    img = checkerboard()
    head, legs = (slice(200, 260), slice(100, 160)), (slice(300, 400), slice(100, 160))
    for kind in ("best_frame", "context"):
        saved = read(files, kind)
        assert changed(saved, img, *head) > 25, kind
    assert changed(read(files, "best_frame"), img, *legs) < 12  # below the head: JPEG noise only


def test_faces_in_the_crop_are_blurred_too(tmp_path):
    """A violation box beside a person: the crop takes in the head, blurred before cropping."""
    img = checkerboard()
    files = write(tmp_path, incident(box=(130, 220, 230, 300)))  # crop: x 100..260, y 196..324
    crop = read(files, "crop")
    assert changed(crop[4:64, 0:60], img[200:260, 100:160], slice(None), slice(None)) > 25


def test_privacy_regions_are_heads_of_people_and_plate_bands_of_vehicles():
    d = dets(("person", PERSON, 0.9), ("car", (200, 100, 400, 300), 0.8), ("garbage", PILE, 0.7))
    assert privacy_regions(d, EvidenceConfig()) == [(100, 200, 160, 260), (250, 210, 350, 284)]
    assert privacy_regions(d, EvidenceConfig(blur_faces=False)) == [(250, 210, 350, 284)]
    assert privacy_regions(d, EvidenceConfig(blur_plates=False, head_fraction=0.5)) == [(100, 200, 160, 300)]


def test_metadata_describes_the_incident_and_its_files(tmp_path):
    files = write(tmp_path)
    meta = json.loads(Path(files[-1].path).read_text(encoding="utf-8"))
    assert {k: meta[k] for k in ("incident_id", "type", "camera_id", "zone_id", "box")} == {
        "incident_id": "cam-garbage-walk-20261120T215500", "type": "garbage", "camera_id": "cam", "zone_id": "walk", "box": [250.0, 300.0, 350.0, 380.0],
    }
    assert meta["taken_at"] == "2026-11-20T22:00:00+08:00"
    assert meta["location"] == {"district": "西湖区", "street": "", "point": "P1", "gps": None}
    assert meta["detections"] == [{"class_name": "garbage", "score": 0.7, "box": [250.0, 300.0, 350.0, 380.0]}]  # the members only
    assert meta["blurred"] == {"faces": True, "plates": True}
    assert meta["files"] == {f.kind: {"file": Path(f.path).name, "sha256": f.sha256} for f in files[:3]}


def test_the_context_frame_marks_the_violation_box_in_red(tmp_path):
    context = read(write(tmp_path, incident(image=np.full((480, 640, 3), 90, np.uint8))), "context")
    b, g, r = context[340, 249]  # on the left edge of the pile's box, 3 px wide
    assert r > 200 and b < 60 and g < 60
    assert np.abs(context[340, 300] - 90).max() < 12  # inside the box the picture is untouched


def test_nothing_is_written_when_disabled_or_without_a_snapshot(tmp_path):
    assert write(tmp_path, enabled=False) == []
    bare = Incident("x", "garbage", "walk", PILE, T0, T0, 1, 1, 0.7, camera_id="cam")
    assert write(tmp_path, bare) == []
    assert list(tmp_path.iterdir()) == []


def test_patrol_incidents_are_filed_under_patrol(tmp_path):
    files = write(tmp_path, incident(camera_id=None))
    assert Path(files[0].path).parent == tmp_path / "patrol" / "cam-garbage-walk-20261120T215500"

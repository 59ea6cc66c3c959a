"""Reviewed frames become a versioned dataset: false alarms as hard negatives, confirmed and edited boxes as
labels, every other object a pseudo-label; and every tool format goes out and comes back with the same boxes,
classes and provenance."""

from __future__ import annotations

import ast
import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from pipeline.cases import CaseStore, LedgerConfig
from pipeline.cases.annotations import Annotations, LabelBox
from pipeline.config import parse_config
from pipeline.detect import DetectorSettings, load_detector
from pipeline.detect.exported import read_onnx_metadata
from pipeline.engine import Engine
from pipeline.formats.yolo import cxcywh_to_xyxy, read_labels
from pipeline.frames import Frame
from pipeline.geometry import box_iou
from pipeline.images import load_image
from pipeline.labels import case_frame
from pipeline.review import dispatch, reject
from pipeline.train.samples import FORMATS, export_samples, import_samples

from .conftest import REPO, STREETS_IN

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
CONFIG = """
cameras:
{cams}
rules:
  non_motor_parking: {{min_dwell_s: 60, min_count: 2}}
evidence: {{blur_plates: false}}  # keep the bikes whole, so the test checks the sample logic, not the blur
"""
CAM = "  - {{id: {id}, location: {{district: 拱墅区, point: {id}-point}}, resolution: [640, 640], zones: [{{id: pavement, kind: no_parking, polygon: [[0, 0], [640, 0], [640, 640], [0, 640]]}}]}}"
COCO = REPO / "models" / "yolo11n-coco" / "model.onnx"
CLASSES = tuple(ast.literal_eval(read_onnx_metadata(COCO)["names"]).values())  # the COCO model's 80, read without loading it


@pytest.fixture(scope="module")
def detector():
    return load_detector(COCO, backend="onnx", settings=DetectorSettings(conf=0.4), threads=1)


@pytest.fixture
def ledger(tmp_path, detector):
    """Two camera cases (cam-a, cam-b) on a street with parked motorbikes, evidence from the engine."""
    image = load_image(STREETS_IN / "images" / "IMG20240615122056_jpg.jpg")
    [dets] = detector.detect([image])
    engine = Engine(parse_config(CONFIG.format(cams="\n".join(CAM.format(id=i) for i in ("cam-a", "cam-b")))), evidence_dir=tmp_path / "work")
    store = CaseStore.open(LedgerConfig(database_url=f"sqlite:///{tmp_path / 'l.db'}", evidence_dir=tmp_path / "evidence"))
    for cam in ("cam-a", "cam-b"):
        for t in range(0, 130, 10):
            for r in engine.process(Frame(image, T0 + timedelta(seconds=t), cam, meta={"model": "coco-test"}), dets).reports:
                store.post_incident(r)
    yield store, dets
    store.close()


def _labels(version, sample):
    rows = read_labels(version / sample["label_file"])
    return rows[:, 0].astype(int), cxcywh_to_xyxy(rows[:, 1:]) * [sample["width"], sample["height"], sample["width"], sample["height"]]


def test_rejected_and_confirmed_cases_become_a_versioned_dataset(ledger, detector, tmp_path):
    store, dets = ledger
    a, b = (store.list(camera_id=c)[0] for c in ("cam-a", "cam-b"))
    frame = case_frame(store, a)
    assert frame.model == "coco-test" and len(frame.proposals) == len(dets) > len(frame.violation) > 0  # every object of the frame, not only the violation's
    reject(store, a.id, actor="annotator", reason="display bikes of the shop, allowed")
    dispatch(store, b.id, actor="office", owner="李娜")
    store.transition(b.id, "rectified", actor="李娜", note="moved")  # a later status change keeps the review decision
    report = export_samples(store, detector, tmp_path / "samples", classes=CLASSES)
    assert report.version.name == "v0001" and (report.negatives, report.positives, report.skipped) == (1, 1, [])
    manifest = json.loads((report.version / "manifest.json").read_text())
    by_case = {s["case"]: s for s in manifest["samples"]}
    sa, sb = by_case[a.id], by_case[b.id]
    assert sa["review_note"] == "display bikes of the shop, allowed" and sa["reviewer"] == "annotator" and sb["decided_by"] == "office"
    assert (sa["camera_id"], sa["model"], sa["decision"], sb["decision"]) == ("cam-a", "coco-test", "rejected", "dispatched")
    assert datetime.fromisoformat(sa["taken_at"]) >= T0 and sa["frame_sha256"] == frame.frame_sha256
    assert manifest["classes"] == list(CLASSES) and manifest["counts"]["per_camera"]["cam-a"]["images"] == 1
    assert sum(manifest["counts"]["labels_per_class"].values()) == sum(len(s["labels"]) for s in manifest["samples"])

    moto = CLASSES.index("motorcycle")
    violation = dets.xyxy[dets.data["class_name"] == "motorcycle"]
    cls_a, boxes_a = _labels(report.version, sa)
    cls_b, boxes_b = _labels(report.version, sb)
    # the false alarm's motorbikes are hard negatives now, everything else is still labelled
    assert len(sa["negatives"]) == len(frame.violation) and not (box_iou(boxes_a[cls_a == moto], violation) >= 0.5).any()
    assert (cls_a != moto).sum() == (cls_b != moto).sum() > 0
    assert {b["origin"] for b in sa["labels"]} == {"pseudo"}
    # the confirmed case keeps them, as confirmed labels
    assert (box_iou(boxes_b[cls_b == moto], violation).max(axis=0) >= 0.5).all()
    assert sum(b["origin"] == "confirmed" for b in sb["labels"]) == len(case_frame(store, b).violation)

    again = export_samples(store, detector, tmp_path / "samples", classes=CLASSES)
    assert again.version.name == "v0002" and json.loads((report.version / "manifest.json").read_text()) == manifest  # v0001 untouched


def test_saved_boxes_are_the_label_set_and_deleted_ones_hard_negatives(ledger, tmp_path):
    store, _ = ledger
    case = store.list(camera_id="cam-a")[0]
    frame = case_frame(store, case)
    first, *rest = frame.proposals
    moved = LabelBox(class_name="bicycle", box=(first.box[0] + 5, first.box[1], first.box[2] + 5, first.box[3]), origin="edited", proposal=first.proposal)
    drawn = LabelBox(class_name="person", box=(10, 10, 60, 200), origin="drawn")
    Annotations(store.db).save(case.id, action="boxes", reviewer="王审核", source="review-page", frame_sha256=frame.frame_sha256, boxes=[moved, drawn, *rest[1:]], negatives=[rest[0]], model=frame.model)
    report = export_samples(store, None, tmp_path / "samples", classes=CLASSES)
    [s] = json.loads((report.version / "manifest.json").read_text())["samples"]
    assert s["reviewer"] == "王审核" and s["decision"] is None and s["labelled_by"] == "review-page"
    assert [b["class_name"] for b in s["labels"]] == ["bicycle", "person", *(p.class_name for p in rest[1:])]
    assert {b["origin"] for b in s["labels"]} == {"human"}  # the proposals are covered: no pseudo-label comes back over a deleted box
    assert s["negatives"][0]["box"] == pytest.approx(list(rest[0].box), abs=0.01)
    cls, boxes = _labels(report.version, s)
    assert box_iou(boxes, [rest[0].box]).max() < 0.5


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_import_round_trip(ledger, tmp_path, fmt):
    store, _ = ledger
    a, b = (store.list(camera_id=c)[0] for c in ("cam-a", "cam-b"))
    reject(store, a.id, actor="annotator", reason="allowed")
    frame = case_frame(store, b)
    drawn = LabelBox(class_name="person", box=(10.5, 10.25, 60, 200), origin="drawn")
    Annotations(store.db).save(b.id, action="boxes", reviewer="王审核", source="review-page", frame_sha256=frame.frame_sha256, boxes=[*frame.proposals[1:], drawn], negatives=[frame.proposals[0]], model=frame.model)
    first = export_samples(store, None, tmp_path / "samples", fmt=fmt, classes=CLASSES)
    done = import_samples(store, fmt, first.version, reviewer="cvat-team")
    assert done.imported == 2
    second = export_samples(store, None, tmp_path / "samples", classes=CLASSES)
    m1, m2 = (json.loads((r.version / "manifest.json").read_text()) for r in (first, second))
    for s1, s2 in zip(m1["samples"], m2["samples"], strict=True):
        for key in ("id", "case", "camera_id", "taken_at", "frame_sha256", "model", "decision", "decided_by", "type", "point"):
            assert s1[key] == s2[key], key
        assert s2["reviewer"] == "cvat-team" and s2["labelled_by"] == f"import:{fmt}"
        assert [x["class_name"] for x in s1["labels"]] == [x["class_name"] for x in s2["labels"]]
        assert np.allclose([x["box"] for x in s1["labels"]], [x["box"] for x in s2["labels"]], atol=0.05)
        assert [x["box"] for x in s1["negatives"]] == [x["box"] for x in s2["negatives"]]  # hard negatives stay negatives
    rows = [h for h in Annotations(store.db).history(b.id) if h.action == "import"]
    assert len(rows) == 1 and rows[0].reviewer == "cvat-team" and rows[0].model == "coco-test"


def test_a_batch_with_a_bad_label_file_is_refused_whole(ledger, tmp_path):
    store, _ = ledger
    a, b = (store.list(camera_id=c)[0] for c in ("cam-a", "cam-b"))
    reject(store, a.id, actor="annotator", reason="allowed")
    dispatch(store, b.id, actor="office", owner="李娜")
    version = export_samples(store, None, tmp_path / "samples", classes=CLASSES).version
    manifest = json.loads((version / "manifest.json").read_text())
    bad = version / manifest["samples"][1]["label_file"]
    bad.write_text(bad.read_text() + "80 0.5 0.5 0.1 0.1\n3 0.99 0.5 0.1 0.1\n")
    lines = len(bad.read_text().splitlines())
    (version / "labels" / "stray.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    with pytest.raises(Exception) as e:
        import_samples(store, "yolo", version, reviewer="someone")
    text = str(e.value)
    assert f"{bad}:{lines - 1}: unknown class id 80 (the dataset has {len(CLASSES)} classes" in text
    assert f"{bad}:{lines}: coordinates out of range" in text and "stray.txt: labels without an image" in text
    assert not [h for c in (a, b) for h in Annotations(store.db).history(c.id) if h.action == "import"]  # nothing imported

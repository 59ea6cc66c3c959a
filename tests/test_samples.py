"""Reviewed cases become training samples: false alarms as background, confirmed ones as labels."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from pipeline.cases import CaseStore, LedgerConfig
from pipeline.config import parse_config
from pipeline.detect import DetectorSettings, load_detector
from pipeline.engine import Engine
from pipeline.formats.yolo import cxcywh_to_xyxy, read_labels
from pipeline.frames import Frame
from pipeline.geometry import box_iou
from pipeline.images import load_image
from pipeline.train.samples import export_samples

from .conftest import STREETS_IN

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
CONFIG = """
cameras:
{cams}
rules:
  non_motor_parking: {{min_dwell_s: 60, min_count: 2}}
evidence: {{blur_plates: false}}  # keep the bikes whole, so the test checks the sample logic, not the blur
"""
CAM = "  - {{id: {id}, location: {{district: 拱墅区, point: {id}-point}}, resolution: [640, 640], zones: [{{id: pavement, kind: no_parking, polygon: [[0, 0], [640, 0], [640, 640], [0, 640]]}}]}}"


def test_rejected_and_confirmed_cases_become_samples(tmp_path, coco_onnx):
    detector = load_detector(coco_onnx, settings=DetectorSettings(conf=0.4))
    image = load_image(STREETS_IN / "images" / "IMG20240615122056_jpg.jpg")  # motorbikes parked on a pavement
    [dets] = detector.detect([image])
    assert (dets.data["class_name"] == "motorcycle").sum() >= 2
    engine = Engine(parse_config(CONFIG.format(cams="\n".join(CAM.format(id=i) for i in ("cam-a", "cam-b")))), evidence_dir=tmp_path / "work")
    store = CaseStore.open(LedgerConfig(database_url=f"sqlite:///{tmp_path / 'l.db'}", evidence_dir=tmp_path / "evidence"))
    try:
        for cam in ("cam-a", "cam-b"):
            for t in range(0, 130, 10):
                for r in engine.process(Frame(image, T0 + timedelta(seconds=t), cam), dets).reports:
                    store.post_incident(r)
        a, b = (store.list(camera_id=c)[0] for c in ("cam-a", "cam-b"))
        store.transition(a.id, "rejected", actor="annotator", note="display bikes of the shop, allowed")
        store.transition(b.id, "dispatched", actor="office", owner="李娜")
        report = export_samples(store, detector, tmp_path / "samples", classes=detector.names)
        assert (report.negatives, report.positives, report.skipped) == (1, 1, [])
        manifest = {s["case"]: s for s in json.loads((tmp_path / "samples" / "samples.json").read_text())["samples"]}
        assert manifest[a.id]["review_note"] == "display bikes of the shop, allowed"

        def labels(case_id):
            rows = read_labels(tmp_path / "samples" / manifest[case_id]["image"].replace("images/", "labels/").replace(".jpg", ".txt"))
            return rows[:, 0].astype(int), cxcywh_to_xyxy(rows[:, 1:]) * 640

        moto = detector.names.index("motorcycle")
        violation = dets.xyxy[dets.data["class_name"] == "motorcycle"]
        cls_a, boxes_a = labels(a.id)
        cls_b, boxes_b = labels(b.id)
        # the false alarm's motorbikes are background now, everything else is still labelled
        assert not (box_iou(boxes_a[cls_a == moto], violation) >= 0.5).any()
        assert (cls_a != moto).sum() == (cls_b != moto).sum() > 0
        # the confirmed case keeps them
        assert (box_iou(boxes_b[cls_b == moto], violation).max(axis=0) >= 0.5).all()
    finally:
        store.close()

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
from pipeline.cases.errors import CaseNotFound
from pipeline.config import parse_config
from pipeline.detect import DetectorSettings, load_detector
from pipeline.detect.exported import read_onnx_metadata
from pipeline.engine import Engine
from pipeline.formats.yolo import cxcywh_to_xyxy, read_labels
from pipeline.source.frames import Frame
from pipeline.geometry import box_iou
from pipeline.source.images import load_image
from pipeline.cases.case_frames import case_frame
from pipeline.review.decisions import dispatch, reject
from pipeline.samples.exchange import FORMATS, export_samples, import_samples

from tests.cases.factory import joining_frame
from tests.conftest import REPO, STREETS_IN

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


PROVENANCE = ("id", "case", "camera_id", "taken_at", "frame_sha256", "model", "decision", "decided_by", "type", "point", "reviewer", "labelled_by", "annotation_id")


def _reviewed(store):
    """Case a rejected (its other objects pseudo-labels), case b's boxes saved in the review page (human labels)."""
    a, b = (store.list(camera_id=c)[0] for c in ("cam-a", "cam-b"))
    reject(store, a.id, actor="annotator", reason="allowed")
    frame = case_frame(store, b)
    drawn = LabelBox(class_name="person", box=(10.5, 10.25, 60, 200), origin="drawn")
    Annotations(store.db).save(b.id, action="boxes", reviewer="王审核", source="review-page", frame_sha256=frame.frame_sha256, boxes=[*frame.proposals[1:], drawn], negatives=[frame.proposals[0]], model=frame.model)
    return a, b


def _by_box(sample):
    return {(x["class_name"], tuple(round(v) for v in x["box"])): (x["origin"], x["source"]) for x in sample["labels"]}


def _manifest(report):
    return json.loads((report.version / "manifest.json").read_text())


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_import_round_trip(ledger, tmp_path, fmt):
    """A batch back from the tool as it went out: same boxes, classes, origins and provenance, and nothing saved
    (saving it would turn the export's pseudo-labels into human labels)."""
    store, _ = ledger
    a, b = _reviewed(store)
    first = export_samples(store, None, tmp_path / "samples", fmt=fmt, classes=CLASSES)
    done = import_samples(store, fmt, first.version, reviewer="cvat-team")
    assert (done.imported, sorted(done.unchanged), done.stale) == (0, sorted(s["id"] for s in _manifest(first)["samples"]), [])
    second = export_samples(store, None, tmp_path / "samples", classes=CLASSES)
    m1, m2 = _manifest(first), _manifest(second)
    assert m1["counts"] == m2["counts"] and {o for s in m1["samples"] for o, _ in _by_box(s).values()} == {"pseudo", "human"}
    for s1, s2 in zip(m1["samples"], m2["samples"], strict=True):
        assert {k: s1[k] for k in PROVENANCE} == {k: s2[k] for k in PROVENANCE}
        assert [(x["class_name"], x["origin"], x["source"]) for x in s1["labels"]] == [(x["class_name"], x["origin"], x["source"]) for x in s2["labels"]]
        assert np.allclose([x["box"] for x in s1["labels"]], [x["box"] for x in s2["labels"]], atol=0.05)
        assert s1["negatives"] == s2["negatives"]  # hard negatives stay negatives
    assert not [h for c in (a, b) for h in Annotations(store.db).history(c.id) if h.action == "import"]


MISSED = ("bicycle", (400.0, 300.0, 480.0, 420.0))


def _draw_missed_box(fmt, version, sample) -> None:
    """What an annotator does in the tool: draw an object the model missed."""
    c, (x1, y1, x2, y2) = MISSED
    w, h = sample["width"], sample["height"]
    if fmt == "yolo":
        path = version / sample["label_file"]
        path.write_text(path.read_text() + f"{CLASSES.index(c)} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}\n")
    else:
        path = version / "coco" / "annotations.json"
        data = json.loads(path.read_text())
        image = next(i["id"] for i in data["images"] if i["file_name"].startswith(sample["id"]))
        category = next(k["id"] for k in data["categories"] if k["name"] == c)
        data["annotations"].append({"id": max(x["id"] for x in data["annotations"]) + 1, "image_id": image, "category_id": category, "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
        path.write_text(json.dumps(data))


@pytest.mark.parametrize("fmt", ["yolo", "coco"])
def test_an_edited_image_is_saved_and_its_untouched_boxes_keep_their_origin(ledger, tmp_path, fmt):
    store, _ = ledger
    a, b = _reviewed(store)
    first = export_samples(store, None, tmp_path / "samples", fmt=fmt, classes=CLASSES)
    m1 = _manifest(first)
    sa, sb = (next(s for s in m1["samples"] if s["case"] == c.id) for c in (a, b))
    _draw_missed_box(fmt, first.version, sa)
    done = import_samples(store, fmt, first.version, reviewer="cvat-team")
    assert (done.imported, done.unchanged) == (1, [sb["id"]]) and "1 unchanged image(s)" in done.message()
    m2 = _manifest(export_samples(store, None, tmp_path / "samples", classes=CLASSES))
    ta, tb = (next(s for s in m2["samples"] if s["case"] == c.id) for c in (a, b))
    assert {k: tb[k] for k in PROVENANCE} == {k: sb[k] for k in PROVENANCE} and tb["labels"] == sb["labels"]  # untouched image: untouched
    assert (ta["reviewer"], ta["labelled_by"], ta["decision"], ta["decided_by"]) == ("cvat-team", f"import:{fmt}", "rejected", "annotator")
    before, after = _by_box(sa), _by_box(ta)
    assert after.pop((MISSED[0], tuple(round(v) for v in MISSED[1]))) == ("human", "imported")  # the annotator's box is a human label
    assert after == before and {o for o, _ in before.values()} == {"pseudo"}  # the boxes nobody touched are still pseudo-labels
    assert ta["negatives"] == sa["negatives"]
    [row] = [h for h in Annotations(store.db).history(a.id) if h.action == "import"]
    assert row.reviewer == "cvat-team" and row.model == "coco-test" and {x.origin for x in row.boxes} == {"imported", "pseudo"}


def test_a_frame_saved_again_after_the_export_is_not_overwritten(ledger, tmp_path):
    store, _ = ledger
    a, b = _reviewed(store)
    first = export_samples(store, None, tmp_path / "samples", classes=CLASSES)
    m1 = _manifest(first)
    for s in m1["samples"]:
        _draw_missed_box("yolo", first.version, s)
    frame = case_frame(store, b)
    later = Annotations(store.db).save(b.id, action="boxes", reviewer="李审核", source="review-page", frame_sha256=frame.frame_sha256, boxes=[frame.proposals[0]], model=frame.model)
    done = import_samples(store, "yolo", first.version, reviewer="cvat-team")
    assert done.imported == 1 and len(done.stale) == 1
    assert f"annotation {later.id} by 李审核" in done.stale[0] and "export a new version" in done.message()
    assert Annotations(store.db).latest_boxes(b.id, frame.frame_sha256).id == later.id  # the reviewer's work stands


def test_an_import_is_all_or_nothing(ledger, tmp_path):
    store, _ = ledger
    a, b = _reviewed(store)
    first = export_samples(store, None, tmp_path / "samples", classes=CLASSES)
    manifest = _manifest(first)
    for s in manifest["samples"]:
        _draw_missed_box("yolo", first.version, s)
    manifest["samples"][-1].update(case=999, annotation_id=None)  # the second image cannot be saved: the first must not be either
    (first.version / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CaseNotFound):
        import_samples(store, "yolo", first.version, reviewer="cvat-team")
    assert not [h for c in (a, b) for h in Annotations(store.db).history(c.id) if h.action == "import"]


def test_boxes_on_an_older_frame_are_exported_after_a_newer_frame_joins(ledger, tmp_path):
    store, _ = ledger
    a, b = (store.list(camera_id=c)[0] for c in ("cam-a", "cam-b"))
    old = case_frame(store, a)
    drawn = LabelBox(class_name="person", box=(10, 10, 60, 200), origin="drawn")
    Annotations(store.db).save(a.id, action="boxes", reviewer="王审核", source="review-page", frame_sha256=old.frame_sha256, boxes=[drawn], model=old.model)
    dispatch(store, b.id, actor="office", owner="李娜")
    later = T0 + timedelta(minutes=10)
    for case, name in ((a, "a-later"), (b, "b-later")):
        assert store.post_incident(joining_frame(tmp_path / "later", case, name, later)).case_id == case.id
    assert case_frame(store, store.get(a.id)).frame_sha256 != old.frame_sha256  # the case's latest frame is the new one
    report = export_samples(store, None, tmp_path / "samples", classes=CLASSES)
    samples = {s["case"]: s for s in _manifest(report)["samples"]}
    assert samples[a.id]["frame_sha256"] == old.frame_sha256 and samples[a.id]["reviewer"] == "王审核"
    assert samples[a.id]["labels"][0] == {"class_name": "person", "box": [10.0, 10.0, 60.0, 200.0], "origin": "human", "source": "drawn"}
    newest = case_frame(store, store.get(b.id))
    assert samples[b.id]["frame_sha256"] == newest.frame_sha256 and newest.model == "newer-model"  # a decision only: the latest frame
    assert len(samples) == 2


def test_only_reviewed_cases_are_read(ledger, tmp_path):
    store, _ = ledger
    a, b = (store.list(camera_id=c)[0] for c in ("cam-a", "cam-b"))
    assert store.reviewed() == []
    dispatch(store, b.id, actor="office", owner="李娜")
    assert [c.id for c in store.reviewed()] == [b.id]
    Annotations(store.db).save(a.id, action="boxes", reviewer="王审核", source="review-page", frame_sha256=case_frame(store, a).frame_sha256, boxes=[])
    assert [c.id for c in store.reviewed()] == [a.id, b.id]


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

"""Reviewed frames become a versioned dataset: the review → samples → retrain step of the loop, and the way out
to annotation tools (CVAT, Label Studio) and back.

What a frame's labels are (each box in the manifest says which):
- `human`: a reviewer's saved boxes (moved, resized, reclassified, drawn or kept in the review page's editor,
  or imported from a tool): the frame's whole label set; the model's boxes they deleted are hard negatives;
- `confirmed`: without saved boxes, a dispatched case's violation boxes; a rejected case's violation boxes are
  hard negatives instead (the false alarm becomes background);
- `pseudo`: every other object the current model finds that no human box or negative covers, so a sample
  never teaches the model that a person or a car is background.
The decision is the latest review transition in the case's history, so a case rectified, closed or reopened
later still contributes what its reviewer said.

`export_samples` writes `ROOT/vNNNN/` (a new version never overwrites an old one): `images/` + `labels/` (YOLO,
what `streetorder train --extra-data` reads), `data.yaml`, `manifest.json` (provenance per image, class list,
counts per class and per camera), and the requested tool format beside them. `import_samples` brings a
labelled batch back as annotations by the importer, attached to the frames the manifest names.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import yaml

from ..cases import CaseStore
from ..cases.annotations import Annotations, LabelBox, new_row
from ..cases.case_frames import case_frames
from ..detect import Detector
from ..formats.base import Box, LabelledImage, ReadResult
from ..formats.yolo import LabelError, LabelProblem, validate_yolo_folder
from ..geometry import box_iou
from ..source.images import ImageError, decode_image
from .labels import current_labels, label_classes, review_decision

from .export_formats import FORMATS
MATCH_IOU = 0.5


@dataclass
class Sample:
    id: str
    image: Path
    width: int
    height: int
    labels: list[dict]
    negatives: list[dict]
    proposals: list[dict]
    provenance: dict

    def boxes(self) -> tuple[Box, ...]:
        return tuple((b["class_name"], tuple(b["box"])) for b in self.labels)


@dataclass
class ExportReport:
    version: Path
    samples: int = 0
    negatives: int = 0  # frames of rejected cases
    positives: int = 0  # frames of confirmed cases
    labels: dict[str, int] = field(default_factory=dict)
    skipped: list[dict] = field(default_factory=list)


def _box(b: LabelBox | dict, origin: str) -> dict:
    d = b.model_dump(mode="json") if isinstance(b, LabelBox) else dict(b)
    return {"class_name": d["class_name"], "box": [round(float(v), 2) for v in d["box"]], "origin": origin, "source": d.get("origin", "model")}


def _covered(box: list[float], class_name: str, labels: list[dict], negatives: list[dict]) -> bool:
    """A model box that a human label (any class: the human chose it) or a negative of its class already covers."""
    against = [b["box"] for b in labels] + [b["box"] for b in negatives if b["class_name"] == class_name]
    return bool(against) and float(box_iou([box], against).max()) >= MATCH_IOU


def collect_samples(store: CaseStore, detector: Detector | None, classes: tuple[str, ...]) -> tuple[list[Sample], list[dict]]:
    """Every reviewed frame as a Sample: each frame with saved boxes, and the latest frame of a case that has a
    review decision and no saved boxes; and the cases skipped, with why. Only cases with a decision or an
    annotation are read (the database picks them).

    `detector`: the current model, for pseudo-labels; None uses the proposing model's own boxes from the evidence."""
    annotations = Annotations(store.db)
    samples, skipped = [], []
    for case in store.reviewed():
        decision = review_decision(case)
        frames = case_frames(store, case)
        labelled = [(f, now) for f in frames if (now := current_labels(annotations, f)).saved is not None]
        if not labelled and decision is not None and frames:
            labelled = [(frames[-1], current_labels(annotations, frames[-1]))]
        if not labelled:
            if decision is not None:
                skipped.append({"case": case.id, "reason": "no best frame or metadata in the evidence store"})
            continue
        for frame, current in labelled:
            sample = _sample(store, case, frame, current, decision, detector, classes, skipped)
            if sample is not None:
                samples.append(sample)
    return samples, skipped


def _export_box(b: LabelBox) -> dict:
    """A saved box as the export labels it: an import's unchanged confirmed or pseudo box keeps what it was."""
    if b.origin == "confirmed":
        return _box(b, "confirmed") | {"source": "model"}
    return _box(b, "human")


def _sample(store: CaseStore, case, frame, current, decision, detector: Detector | None, classes: tuple[str, ...], skipped: list[dict]) -> Sample | None:
    labels: list[dict] = []
    negatives: list[dict] = []
    if current.saved is not None:
        # saved pseudo-labels nobody confirmed are not human labels: they come back below as pseudo-labels, of the current model
        labels = [_export_box(b) for b in current.boxes if b.origin != "pseudo"]
        negatives = [_box(b, "negative") for b in current.negatives]
    else:
        members = [frame.proposals[i] for i in frame.violation]
        if decision.to_status == "rejected":
            negatives = [_box(b, "negative") for b in members]
        else:
            labels = [_box(b, "confirmed") for b in members]
    path = store.evidence.path(frame.frame_sha256)
    if detector is not None:
        try:
            image = decode_image(path.read_bytes(), f"case {case.id} best frame")
        except ImageError as e:
            skipped.append({"case": case.id, "frame_sha256": frame.frame_sha256, "reason": str(e)})
            return None
        d = detector.detect([image])[0]
        candidates = [{"class_name": str(n), "box": [float(v) for v in b], "origin": "model"} for b, n in zip(d.xyxy, d.data["class_name"])]
    else:
        candidates = [p.model_dump(mode="json") for p in frame.proposals]
    for c in candidates:
        if c["class_name"] in classes and not _covered(c["box"], c["class_name"], labels, negatives):
            labels.append(_box(c, "pseudo") | {"source": "current-model" if detector is not None else "proposal"})
    unknown = sorted({b["class_name"] for b in labels if b["class_name"] not in classes})
    if unknown:
        skipped.append({"case": case.id, "frame_sha256": frame.frame_sha256, "reason": f"labels of classes not in the class list: {', '.join(unknown)}"})
        return None
    who = current.saved if current.saved is not None and (decision is None or current.saved.at >= decision.at) else None
    provenance = {
        "case": case.id, "type": case.type, "camera_id": case.camera_id, "district": case.location.district, "point": case.location.point,
        "taken_at": frame.taken_at.isoformat(), "frame_sha256": frame.frame_sha256, "model": frame.model,
        "decision": decision.to_status.value if decision else None, "decided_by": decision.actor if decision else None,
        "decided_at": decision.at.isoformat() if decision else None, "review_note": decision.note if decision else None,
        "reviewer": who.reviewer if who else (decision.actor if decision else None),
        "reviewed_at": (who.at if who else decision.at).isoformat(),
        "annotation_id": current.saved.id if current.saved else None, "labelled_by": current.saved.source if current.saved else "review decision",
        "pseudo_labels_from": "current model" if detector is not None else "proposing model",
    }
    return Sample(f"case{case.id}-{frame.frame_sha256[:12]}", path, frame.width, frame.height, labels, negatives, [p.model_dump(mode="json") for p in frame.proposals], provenance)


def _next_version(root: Path) -> int:
    taken = [int(p.name[1:]) for p in root.glob("v[0-9][0-9][0-9][0-9]") if p.name[1:].isdigit()]
    return max(taken, default=0) + 1


def _labelled_images(samples: list[Sample], images_dir: Path) -> list[LabelledImage]:
    return [
        LabelledImage(f"{s.id}.jpg", images_dir / f"{s.id}.jpg", s.width, s.height, s.boxes(), s.provenance, tuple((p["class_name"], tuple(p["box"])) for p in s.proposals))
        for s in samples
    ]


def write_version(samples: list[Sample], classes: tuple[str, ...], folder: Path, fmt: str) -> dict:
    """Write one dataset version into the (new, empty) `folder`; returns the manifest."""
    from ..formats.base import write_yolo_labels
    from ..formats.coco import write_coco
    from ..formats.cvat import write_cvat
    from ..formats.labelstudio import write_labelstudio

    images_dir, labels_dir = folder / "images", folder / "labels"
    images_dir.mkdir(parents=True)
    labels_dir.mkdir()
    for s in samples:
        shutil.copyfile(s.image, images_dir / f"{s.id}.jpg")  # the evidence bytes as stored (blurred), not re-encoded
    images = _labelled_images(samples, images_dir)
    write_yolo_labels(images, classes, labels_dir)
    (folder / "data.yaml").write_text(yaml.safe_dump({"train": "images", "val": "images", "names": dict(enumerate(classes))}, sort_keys=False, allow_unicode=True))
    if fmt == "coco":
        write_coco(images, classes, folder / "coco" / "annotations.json")
    elif fmt == "cvat":
        write_cvat(images, classes, folder / "cvat" / "coco-1.0.zip")
    elif fmt == "labelstudio":
        write_labelstudio(images, classes, folder / "labelstudio")
    per_class = {c: 0 for c in classes}
    per_camera: dict[str, dict[str, int]] = {}
    for s in samples:
        cam = per_camera.setdefault(s.provenance["camera_id"] or "patrol", {"images": 0, "labels": 0, "negatives": 0})
        cam["images"] += 1
        cam["labels"] += len(s.labels)
        cam["negatives"] += len(s.negatives)
        for b in s.labels:
            per_class[b["class_name"]] += 1
    return {
        "version": folder.name, "created_at": datetime.now(UTC).isoformat(), "format": fmt, "classes": list(classes),
        "counts": {
            "images": len(samples), "labels_per_class": per_class, "per_camera": per_camera,
            "labels_by_origin": {o: sum(b["origin"] == o for s in samples for b in s.labels) for o in ("human", "confirmed", "pseudo")},
            "negatives": sum(len(s.negatives) for s in samples),
        },
        "samples": [
            {"id": s.id, "image": f"images/{s.id}.jpg", "label_file": f"labels/{s.id}.txt", "width": s.width, "height": s.height, **s.provenance, "labels": s.labels, "negatives": s.negatives}
            for s in samples
        ],
    }


def export_samples(store: CaseStore, detector: Detector | None, root: Path, fmt: str = "yolo", classes: tuple[str, ...] | None = None) -> ExportReport:
    """Write the next version `root/vNNNN/`; an existing version is never touched (the folder is built aside and
    renamed into place, and a name already taken is never reused)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (use one of: {', '.join(FORMATS)})")
    classes = tuple(classes or label_classes())
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    samples, skipped = collect_samples(store, detector, classes)
    with tempfile.TemporaryDirectory(dir=root, prefix=".building-") as tmp:
        while True:
            final = root / f"v{_next_version(root):04d}"
            build = Path(tmp) / final.name
            manifest = write_version(samples, classes, build, fmt)
            (build / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
            try:
                os.rename(build, final)  # atomic; fails if another export took the name meanwhile (non-empty dir)
                break
            except OSError:
                if not final.exists():
                    raise
                shutil.rmtree(build)
    decisions = [s.provenance["decision"] for s in samples]
    return ExportReport(final, len(samples), decisions.count("rejected"), decisions.count("dispatched"), manifest["counts"]["labels_per_class"], skipped)


# ---- import ------------------------------------------------------------------------------------------------


@dataclass
class ImportReport:
    imported: int  # images saved as new label sets
    boxes: int
    reviewer: str
    unchanged: list[str] = field(default_factory=list)  # sample ids whose boxes came back as exported: not saved again
    stale: list[str] = field(default_factory=list)  # why each frame saved again since the export was left alone

    def message(self) -> str:
        lines = [f"imported {self.imported} image(s), {self.boxes} box(es) as annotations by {self.reviewer}; {len(self.unchanged)} unchanged image(s) left as they were"]
        lines += [f"skipped {why}" for why in self.stale]
        return "\n".join(lines)


IMPORT_TOLERANCE_PX = 0.5  # a box that comes back this close (the formats' rounding) is the exported box, unchanged


def _match(boxes: list[Box], exported: list[dict]) -> list[dict | None]:
    """For each imported box, the exported label it is (same class, every side within the tolerance), or None."""
    free = list(exported)
    out: list[dict | None] = []
    for c, b in boxes:
        hit = next((e for e in free if e["class_name"] == c and max(abs(x - y) for x, y in zip(b, e["box"])) <= IMPORT_TOLERANCE_PX), None)
        if hit is not None:
            free.remove(hit)
        out.append(hit)
    return out


def _kept(label: dict) -> str:
    """The origin an unchanged exported label keeps in the annotation log."""
    if label["origin"] in ("confirmed", "pseudo"):
        return label["origin"]
    return label["source"] if label["source"] in ("model", "edited", "drawn", "imported") else "imported"


def find_manifest(path: Path) -> Path:
    """The manifest of the version a tool's file came from: in PATH or one of its parents."""
    path = Path(path).resolve()
    for folder in [path if path.is_dir() else path.parent, *path.parents]:
        if (folder / "manifest.json").is_file():
            return folder / "manifest.json"
    raise FileNotFoundError(f"no manifest.json in {path} or its parents: give the exported version's manifest with --manifest")


def _read(fmt: str, path: Path, classes: tuple[str, ...], manifest: dict) -> ReadResult:
    from ..formats.coco import read_coco
    from ..formats.cvat import read_cvat
    from ..formats.labelstudio import read_labelstudio

    path = Path(path)
    if fmt == "yolo":
        folder = path
        check = validate_yolo_folder(folder / "images", folder / "labels", len(classes))
        out = ReadResult(problems=check.problems)
        sizes = {s["id"]: (s["width"], s["height"]) for s in manifest["samples"]}
        from ..formats.yolo import cxcywh_to_xyxy

        for image, rows in check.pairs:
            w, h = sizes.get(image.stem, (0, 0))
            xyxy = cxcywh_to_xyxy(rows[:, 1:]) * [w, h, w, h] if len(rows) else np.zeros((0, 4))
            out.boxes[image.name] = [(classes[int(c)], tuple(float(v) for v in b)) for c, b in zip(rows[:, 0], xyxy)]
        return out
    if fmt == "coco":
        return read_coco(path / "coco" / "annotations.json" if path.is_dir() else path, classes)
    if fmt == "cvat":
        return read_cvat(path / "cvat" / "coco-1.0.zip" if (path / "cvat" / "coco-1.0.zip").is_file() else path, classes)
    if fmt == "labelstudio":
        return read_labelstudio(path / "labelstudio" if (path / "labelstudio").is_dir() else path, classes, {s["id"]: (s["width"], s["height"]) for s in manifest["samples"]})
    raise ValueError(f"unknown format {fmt!r} (use one of: {', '.join(FORMATS)})")


def import_samples(store: CaseStore, fmt: str, path: Path, *, reviewer: str, manifest_path: Path | None = None) -> ImportReport:
    """Bring a labelled batch back: each changed image's boxes become the frame's label set, saved as an annotation
    by `reviewer` (the importer) on the case and frame the manifest names; boxes that came back as exported keep
    their origin (a pseudo-label stays one), and an image that came back unchanged is not saved at all. The hard
    negatives of the export stay negatives unless the batch labels them. A frame whose boxes were saved again
    after the export (the review page) is left alone and reported. Everything is checked and built first and
    saved in one transaction: any problem (LabelError, StaleLabels, a database error) imports nothing."""
    manifest_path = Path(manifest_path) if manifest_path else find_manifest(path)
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    classes = tuple(manifest["classes"])
    known = label_classes()
    result = _read(fmt, Path(path), classes, manifest)
    by_id = {s["id"]: s for s in manifest["samples"]}
    problems = list(result.problems)
    for name in result.boxes:
        sample_id = result.sample_ids.get(name, Path(name).stem)
        if sample_id not in by_id:
            problems.append(LabelProblem(Path(path), None, f"{name}: labels without an image: {sample_id} is not in {manifest_path}"))
        for c, _ in result.boxes[name]:
            if c not in known:
                problems.append(LabelProblem(Path(path), None, f"{name}: class {c!r} is not in the current class list"))
    if problems:
        raise LabelError(problems)
    annotations = Annotations(store.db)
    rows, expect, report = [], {}, ImportReport(0, 0, reviewer)
    for name, boxes in result.boxes.items():
        s = by_id[result.sample_ids.get(name, Path(name).stem)]
        matched = _match(boxes, s["labels"])
        if len(boxes) == len(s["labels"]) and all(m is not None for m in matched):
            report.unchanged.append(s["id"])  # nothing to learn from: saving it would make its pseudo-labels human ones
            continue
        latest = annotations.latest_boxes(s["case"], s["frame_sha256"])
        if (latest.id if latest else None) != s.get("annotation_id"):
            now = f"annotation {latest.id} by {latest.reviewer} at {latest.at:%Y-%m-%d %H:%M} UTC" if latest else "none"
            report.stale.append(f"{s['id']}: its boxes were saved again after the export (now {now}, the export had {s.get('annotation_id')}); export a new version and label that")
            continue
        labels = [
            LabelBox(class_name=m["class_name"], box=tuple(m["box"]), origin=_kept(m)) if m is not None else LabelBox(class_name=c, box=b, origin="imported")
            for (c, b), m in zip(boxes, matched)
        ]
        kept = []
        for n in s["negatives"]:
            same = [lb.box for lb in labels if lb.class_name == n["class_name"]]
            if not same or float(box_iou([n["box"]], same).max()) < MATCH_IOU:
                kept.append(LabelBox(class_name=n["class_name"], box=tuple(n["box"]), origin="model"))
        rows.append(new_row(
            s["case"], action="import", reviewer=reviewer, source=f"import:{fmt}", frame_sha256=s["frame_sha256"], boxes=labels, negatives=kept,
            frame_size=(s["width"], s["height"]), model=s.get("model"), note=f"{manifest['version']} from {path}",
        ))
        expect[(s["case"], s["frame_sha256"])] = s.get("annotation_id")
        report.boxes += len(labels)
    annotations.save_all(rows, expect=expect)  # one transaction: all of it or, on any failure, nothing
    report.imported = len(rows)
    return report

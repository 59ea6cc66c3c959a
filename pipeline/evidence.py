"""Evidence for an incident: best frame, crop, context frame, metadata, each with its sha256.

Everything saved is blurred first (heads of people, plate bands of vehicles) as configured, so no file on
disk shows a face or a licence plate. File names carry a hash prefix: a better best-frame later is a new file,
and a file a case already references is never overwritten.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import supervision as sv

from .config import EvidenceConfig
from .domain import EvidenceFile, Location
from .draw import draw_detections
from .incidents import Incident
from .rules.registry import STATIC_CLASS, zone_kinds

FACE_CLASSES = ("person",)
PLATE_CLASSES = ("car", "truck", "motorcycle", "bus")


def privacy_regions(detections: sv.Detections, cfg: EvidenceConfig) -> list[tuple[int, int, int, int]]:
    """Regions to blur: the top `head_fraction` of each person box; the lower-middle band of each vehicle box, where
    plates sit seen from the front or back (a fifth of the box, so the vehicle itself stays recognisable)."""
    regions = []
    names = detections.data.get("class_name", np.array([], dtype=object))
    for (x1, y1, x2, y2), n in zip(detections.xyxy, names):
        w, h = x2 - x1, y2 - y1
        if cfg.blur_faces and n in FACE_CLASSES:
            regions.append((x1, y1, x2, y1 + h * cfg.head_fraction))
        elif cfg.blur_plates and n in PLATE_CLASSES:
            regions.append((x1 + 0.25 * w, y1 + 0.55 * h, x2 - 0.25 * w, y1 + 0.92 * h))
    return [tuple(int(round(v)) for v in r) for r in regions]


def blur_regions(image: np.ndarray, regions) -> np.ndarray:
    """Pixelate then blur each region: unreadable, yet the scene stays legible. The blur (a kernel a quarter of
    the region's short side) runs on the pixelated copy, an eighth of the size, before it is scaled back: the
    same picture within a grey level or two, for a tenth of the time (a person's head at 1080p took 1-3 ms)."""
    out = image.copy()
    h, w = out.shape[:2]
    for x1, y1, x2, y2 in regions:
        x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
        if x2 - x1 < 2 or y2 - y1 < 2:
            continue
        roi = out[y1:y2, x1:x2]
        small = cv2.resize(roi, (max(1, (x2 - x1) // 8), max(1, (y2 - y1) // 8)), interpolation=cv2.INTER_AREA)
        k = max(3, (min(x2 - x1, y2 - y1) // 32) | 1)  # a quarter of the short side, at an eighth of the size
        out[y1:y2, x1:x2] = cv2.resize(cv2.GaussianBlur(small, (k, k), 0), (x2 - x1, y2 - y1), interpolation=cv2.INTER_LINEAR)
    return out


def privacy_blur(image: np.ndarray, detections: sv.Detections, cfg: EvidenceConfig) -> np.ndarray:
    """`image` as every saved copy shows it (evidence files, a case's after-image): the privacy regions of
    `detections` blurred."""
    return blur_regions(image, privacy_regions(detections, cfg))


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("could not encode evidence image")
    return buf.tobytes()


def crop_with_margin(image: np.ndarray, box, margin: float) -> np.ndarray:
    h, w = image.shape[:2]
    x1, y1, x2, y2 = box
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    x1, y1 = int(max(0, x1 - mx)), int(max(0, y1 - my))
    x2, y2 = int(min(w, x2 + mx)), int(min(h, y2 + my))
    return image[y1:max(y2, y1 + 1), x1:max(x2, x1 + 1)]


def draw_context(image: np.ndarray, polygons: list[tuple[str, str, np.ndarray]], detections: sv.Detections, box) -> np.ndarray:
    """Zones outlined and named, detections boxed, the violation box in red."""
    out = image.copy()
    colors = {name: k.colour for name, k in zone_kinds().items()}
    for zid, kind, poly in polygons:
        cv2.polylines(out, [poly.astype(np.int32)], True, colors.get(kind, (255, 255, 255)), 2)
        cv2.putText(out, f"{zid} ({kind})", tuple(int(v) for v in poly[0]), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colors.get(kind, (255, 255, 255)), 1, cv2.LINE_AA)
    if len(detections):
        out = draw_detections(out, detections, in_place=True)
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    cv2.rectangle(out, (x1, y1), (x2, y2), (0, 0, 255), 3)
    return out


def _records(detections: sv.Detections) -> list[dict]:
    names = detections.data.get("class_name", [None] * len(detections))
    scores = detections.confidence if detections.confidence is not None else [1.0] * len(detections)
    return [{"class_name": str(n), "score": round(float(s), 3), "box": [round(float(v), 1) for v in b]} for b, s, n in zip(detections.xyxy, scores, names)]


def _static_records(snap) -> list[dict]:
    """The violation's static objects (new in the view, stayed put): region and when it appeared."""
    d = snap.detections
    members = [m for m in snap.members if str(d.data["class_name"][m]) == STATIC_CLASS]
    return [{"box": [round(float(v), 1) for v in d.xyxy[m]], "appeared_at": d.data["still_since"][m].isoformat()} for m in members]


@dataclass(frozen=True)
class StaticEvidence:
    """What a report shows of a static object behind a case: its region, when it appeared, how long it stayed."""

    box: tuple[float, float, float, float]
    appeared_at: datetime
    stayed_s: float

    @property
    def stayed(self) -> str:
        minutes = round(self.stayed_s / 60)
        return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def static_evidence(files, metadata_sha: str | None, last_seen: datetime) -> list[StaticEvidence]:
    """The static objects a case's evidence metadata (`metadata_sha` in the evidence store `files`) names, each
    seen until `last_seen` (the case's); none when the record is missing, purged or unreadable."""
    if not metadata_sha or not files.exists(metadata_sha):
        return []
    try:
        records = json.loads(files.read(metadata_sha)).get("static_objects") or ()
        out = []
        for r in records:
            appeared = datetime.fromisoformat(r["appeared_at"])
            out.append(StaticEvidence(tuple(r["box"]), appeared, max((last_seen - appeared).total_seconds(), 0.0)))
        return out
    except (OSError, ValueError, KeyError, TypeError):
        return []


class EvidenceWriter:
    """Writes an incident's evidence under `root/<camera or patrol>/<incident id>/`, or, with `sink`, keeps the
    bytes in that dict by sha256 and writes nothing: a night-job worker ships them to the ledger writer, which may
    run on another machine, and a killed worker leaves no files behind."""

    def __init__(self, cfg: EvidenceConfig, root: Path | None = None, sink: dict[str, bytes] | None = None) -> None:
        if root is None and sink is None:
            raise ValueError("evidence needs a folder or a sink")
        self.cfg = cfg
        self.root = Path(root) if root is not None else None
        self.sink = sink

    def _put(self, folder: Path, kind: str, ext: str, data: bytes, taken_at) -> EvidenceFile:
        sha = hashlib.sha256(data).hexdigest()
        if self.sink is not None:
            self.sink[sha] = data
            return EvidenceFile(kind=kind, path=f"memory:{folder.name}/{kind}-{sha[:12]}.{ext}", sha256=sha, taken_at=taken_at)
        path = folder / f"{kind}-{sha[:12]}.{ext}"
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        return EvidenceFile(kind=kind, path=str(path), sha256=sha, taken_at=taken_at)

    def _jpeg(self, image: np.ndarray) -> bytes:
        return encode_jpeg(image, self.cfg.jpeg_quality)

    def write(self, incident: Incident, location: Location, polygons: list[tuple[str, str, np.ndarray]]) -> list[EvidenceFile]:
        snap = incident.best
        if snap is None or not self.cfg.enabled:
            return []
        folder = (self.root or Path()) / (incident.camera_id or "patrol") / incident.id
        if self.sink is None:
            folder.mkdir(parents=True, exist_ok=True)
        clean = privacy_blur(snap.image, snap.private, self.cfg)
        files = [
            self._put(folder, "best_frame", "jpg", self._jpeg(clean), snap.at),
            self._put(folder, "crop", "jpg", self._jpeg(crop_with_margin(clean, snap.box, self.cfg.crop_margin)), snap.at),
            self._put(folder, "context", "jpg", self._jpeg(draw_context(clean, polygons, snap.detections[list(snap.members)], snap.box)), snap.at),
        ]
        meta = {
            "incident_id": incident.id,
            "type": incident.type,
            "taken_at": snap.at.isoformat(),
            "camera_id": incident.camera_id,
            "zone_id": incident.zone_id,
            "location": location.model_dump(mode="json"),
            "box": [round(v, 1) for v in snap.box],
            "detections": [
                {"class_name": str(n), "score": round(float(s), 3), "box": [round(float(v), 1) for v in b]}
                for b, s, n in zip(snap.detections.xyxy[list(snap.members)], snap.detections.confidence[list(snap.members)], snap.detections.data["class_name"][list(snap.members)])
            ],
            # every object the model found in the frame, not only the violation's: what the review page's box
            # editor starts from, and what a sample keeps as pseudo-labels where no reviewer looked
            "frame_size": [int(snap.image.shape[1]), int(snap.image.shape[0])],
            "static_objects": _static_records(snap),
            "model": snap.model,
            "frame_detections": _records(snap.private),
            "blurred": {"faces": self.cfg.blur_faces, "plates": self.cfg.blur_plates},
            "files": {f.kind: {"file": Path(f.path).name, "sha256": f.sha256} for f in files},
        }
        files.append(self._put(folder, "metadata", "json", json.dumps(meta, ensure_ascii=False, indent=2).encode(), snap.at))
        return files

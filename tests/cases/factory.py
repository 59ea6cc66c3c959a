"""Test data: incidents with real (small) JPEG evidence files, and an injectable frame clock."""

from __future__ import annotations

import hashlib
import io
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from PIL import Image

from pipeline.domain import EvidenceFile, GeoPoint, IncidentReport, Location

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=SHANGHAI)


class FrameClock:
    """The store's clock in tests: it only moves when the test says so."""

    def __init__(self, t: datetime):
        self.t = t

    def __call__(self) -> datetime:
        return self.t

    def advance(self, **kw) -> datetime:
        self.t += timedelta(**kw)
        return self.t


def jpeg(seed: int, size: tuple[int, int] = (64, 48)) -> bytes:
    """A small real JPEG whose content differs per seed."""
    im = Image.new("RGB", size, ((seed * 53) % 256, (seed * 97) % 256, (seed * 193) % 256))
    im.putpixel((seed % size[0], (seed // size[0]) % size[1]), (255 - (seed % 256), 0, 0))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def evidence_file(folder: Path, seed: int, kind: str = "best_frame", taken_at: datetime = T0, data: bytes | None = None) -> EvidenceFile:
    data = data if data is not None else jpeg(seed)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"ev-{seed}-{kind}.jpg"
    path.write_bytes(data)
    return EvidenceFile(kind=kind, path=str(path), sha256=hashlib.sha256(data).hexdigest(), taken_at=taken_at)


def incident(
    folder: Path,
    incident_id: str,
    *,
    type: str = "street_vending",
    point: str = "P-001",
    district: str = "黄浦区",
    camera_id: str | None = "cam-1",
    gps: tuple[float, float] | None = None,
    first_seen: datetime = T0,
    last_seen: datetime | None = None,
    severity: int = 1,
    count: int = 1,
    owner: str | None = "owner-zhang",
    box: tuple[float, float, float, float] | None = (100, 100, 200, 220),
    seed: int | None = None,
    evidence: list[EvidenceFile] | None = None,
) -> IncidentReport:
    seed = seed if seed is not None else int(hashlib.sha256(incident_id.encode()).hexdigest()[:6], 16)
    return IncidentReport(
        incident_id=incident_id,
        type=type,
        source="camera" if camera_id else "patrol",
        camera_id=camera_id,
        zone_id="zone-a" if camera_id else None,
        location=Location(district=district, street="南京东路街道", point=point, gps=GeoPoint(lat=gps[0], lon=gps[1]) if gps else None),
        owner=owner,
        first_seen=first_seen,
        last_seen=last_seen or first_seen + timedelta(minutes=10),
        severity=severity,
        count=count,
        score=0.8,
        box=box if camera_id else None,
        evidence=evidence if evidence is not None else [evidence_file(folder, seed, taken_at=first_seen)],
    )


def joining_frame(folder: Path, case, incident_id: str, at: datetime, *, size: tuple[int, int] = (640, 640), seed: int = 7, model: str = "newer-model") -> IncidentReport:
    """A later incident at `case`'s spot, with a new best frame and its metadata: it joins the open case and
    becomes the case's latest frame (as a second camera or a later report does)."""
    import json

    frame = evidence_file(folder, seed, taken_at=at, data=jpeg(seed, size))
    meta = {"files": {"best_frame": {"sha256": frame.sha256}}, "frame_size": list(size), "model": model,
            "detections": [{"class_name": "motorcycle", "box": [20, 30, 120, 200], "score": 0.9}],
            "frame_detections": [{"class_name": "motorcycle", "box": [20, 30, 120, 200], "score": 0.9}, {"class_name": "person", "box": [300, 40, 360, 220], "score": 0.8}]}
    data = json.dumps(meta).encode()
    path = folder / f"meta-{incident_id}.json"
    path.write_bytes(data)
    metadata = EvidenceFile(kind="metadata", path=str(path), sha256=hashlib.sha256(data).hexdigest(), taken_at=at)
    loc = case.location
    return IncidentReport(
        incident_id=incident_id, type=case.type, source="camera" if case.camera_id else "patrol", camera_id=case.camera_id, zone_id="zone-a" if case.camera_id else None,
        location=Location(district=loc.district, street=loc.street, point=loc.point), owner=case.owner, first_seen=at, last_seen=at + timedelta(seconds=5),
        severity=1, count=1, score=0.9, box=case.box if case.camera_id else None, evidence=[frame, metadata],
    )

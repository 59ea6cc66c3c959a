"""POST /detect: the detector's boxes."""

from __future__ import annotations

import supervision as sv
from pydantic import Field

from .common import Box, Out


class DetectionOut(Out):
    class_id: int
    class_name: str
    score: float
    box: Box = Field(description="x1, y1, x2, y2 in the uploaded image's pixels")
    track_id: int | None = Field(None, description="Tracker id (camera frames only)")

    @classmethod
    def many(cls, d: sv.Detections) -> list[DetectionOut]:
        names = d.data.get("class_name", [""] * len(d))
        tracks = d.tracker_id if d.tracker_id is not None else [None] * len(d)
        return [
            cls(class_id=int(c), class_name=str(n), score=round(float(s), 4), box=tuple(round(float(v), 1) for v in xy), track_id=None if t is None or int(t) < 0 else int(t))
            for xy, s, c, n, t in zip(d.xyxy, d.confidence, d.class_id, names, tracks)
        ]


class DetectOut(Out):
    model: str
    width: int
    height: int
    detections: list[DetectionOut]

"""Zones of one camera at the size of the frames actually arriving, backed by `supervision.PolygonZone`.

An object is in a zone when its bottom-centre (where it stands on the ground) is inside the polygon.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

import cv2
import numpy as np
import supervision as sv

from ..config import CameraConfig, ZoneConfig
from ..rules.registry import zone_kind


@dataclass(frozen=True)
class Zone:
    """A configured zone placed on a frame of a given size."""

    config: ZoneConfig
    polygon: np.ndarray  # (N, 2) int pixels of the frame

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def kind(self) -> str:
        return self.config.kind

    def active(self, at_local: datetime) -> bool:
        """False while the zone's schedule allows the activity (a night market's opening hours)."""
        return self.config.schedule is None or not self.config.schedule.allows(at_local)

    @cached_property
    def _polygon_zone(self) -> sv.PolygonZone:
        return sv.PolygonZone(self.polygon, triggering_anchors=(sv.Position.BOTTOM_CENTER,))

    def contains(self, detections: sv.Detections) -> np.ndarray:
        if len(detections) == 0:
            return np.zeros(0, dtype=bool)
        key = detections.xyxy.tobytes()
        last = self._last.get("contains")
        if last is not None and last[0] == key:  # the change gate's repeats ask again about the same boxes
            return last[1].copy()
        inside = self._polygon_zone.trigger(detections)
        self._last["contains"] = (key, inside.copy())
        return inside

    @cached_property
    def _last(self) -> dict:
        return {}


class CameraZones:
    """All zones of a camera for one frame size; built once per (camera config, size) and reused."""

    def __init__(self, camera: CameraConfig, width: int, height: int) -> None:
        self.camera = camera
        self.zones = [Zone(z, np.round(np.array(z.pixel_polygon(width, height, camera.resolution))).astype(np.int64)) for z in camera.zones]
        self.masks = [z for z in self.zones if zone_kind(z.kind).mask]  # `ignore` zones

    def of_kind(self, kind: str) -> list[Zone]:
        return [z for z in self.zones if z.kind == kind]

    def ignore_mask(self, width: int, height: int) -> np.ndarray | None:
        """The frame's pixels under an `ignore` mask (None when the camera has none)."""
        if not self.masks:
            return None
        mask = np.zeros((height, width), np.uint8)
        cv2.fillPoly(mask, [z.polygon.astype(np.int32) for z in self.masks], 1)
        return mask.astype(bool)

    def ignored(self, detections: sv.Detections) -> np.ndarray:
        """Detections standing inside any `ignore` mask."""
        mask = np.zeros(len(detections), dtype=bool)
        for z in self.masks:
            mask |= z.contains(detections)
        return mask

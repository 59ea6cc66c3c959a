"""Who a case goes to (点位长): the owner the case carries, else the one the camera config names for its camera or
its point. A patrol photo near a camera point takes that point's place (engine.patrol_location) but no owner,
so without this every patrol case needed its owner typed by hand on the review page."""

from __future__ import annotations

from dataclasses import dataclass

from ..cases import CaseView
from ..config import StreetOrderConfig


@dataclass(frozen=True)
class OwnerBook:
    """Owners by camera id and by place (district, point; a zone's own point counts as the camera's)."""

    by_camera: dict[str, str]
    by_point: dict[tuple[str, str], str]

    @classmethod
    def of(cls, config: StreetOrderConfig) -> OwnerBook:
        by_camera: dict[str, str] = {}
        by_point: dict[tuple[str, str], str] = {}
        for cam in config.cameras:
            if not cam.owner:
                continue
            by_camera[cam.id] = cam.owner
            for point in (cam.location.point, *(z.point for z in cam.zones if z.point)):
                by_point.setdefault((cam.location.district, point), cam.owner)
        return cls(by_camera, by_point)

    def owner_for(self, case: CaseView) -> str | None:
        """The case's own owner first (a reviewer's earlier choice), then its camera's, then its point's."""
        if case.owner:
            return case.owner
        if case.camera_id and case.camera_id in self.by_camera:
            return self.by_camera[case.camera_id]
        return self.by_point.get((case.location.district, case.location.point))

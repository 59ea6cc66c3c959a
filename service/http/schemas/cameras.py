"""/cameras: the camera config as the engine uses it, and its fixtures."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pipeline.config import Fixture, ZoneKind
from pipeline.domain import FreeText, Location

from .common import Box, Out, Page


class ZoneOut(Out):
    id: str
    kind: ZoneKind
    point: str | None
    scheduled: bool = Field(description="Has allowed time windows")


class CameraOut(Out):
    id: str
    name: str
    location: Location
    owner: str | None
    resolution: tuple[int, int]
    timezone: str
    zones: list[ZoneOut]
    fixtures: list[Fixture]
    last_frame_at: datetime | None


class CameraList(Page):
    config_path: str | None
    config_version: int
    config_error: str | None = Field(description="Why the last reload failed; the last good config stays in use")
    fixtures_file: str | None
    cameras: list[CameraOut]


class FixtureEdit(BaseModel):
    """A known static thing allowed where it stands; detections matching it are dropped from the next frame on."""

    model_config = ConfigDict(extra="forbid")

    box: Box = Field(description="x1, y1, x2, y2 in the camera's resolution pixels (or 0..1 with coords=normalized)")
    coords: Literal["pixel", "normalized"] = "pixel"
    classes: list[str] | None = Field(None, min_length=1, description="Classes it suppresses; all if omitted (an empty list is refused: it would read as all)")
    reason: FreeText = Field(min_length=1, max_length=500, description="Why it is allowed, e.g. 'permitted kiosk' (no control or bidi characters)")
    min_iou: float = Field(0.4, gt=0, le=1)

    def fixture(self, fixture_id: str) -> Fixture:
        return Fixture(id=fixture_id, box=self.box, coords=self.coords, classes=tuple(self.classes) if self.classes is not None else None, min_iou=self.min_iou, reason=self.reason)


class FixtureIn(FixtureEdit):
    id: str | None = Field(None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.\-]+$", description="Stable once given; defaults to a generated one")


class FixtureOut(Fixture):
    editable: bool = Field(description="In the fixtures file, so the API can edit and remove it; false: hand-written in the camera config")


class FixtureList(Page):
    camera_id: str
    fixtures: list[FixtureOut]

"""The shared vocabulary at module boundaries: where a thing is, what was found, and the files that prove it.

These are the pydantic models that cross from the violation engine to the case ledger (and over the API),
so they validate on the way in. The engine's working state lives in dataclasses next to its logic.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ViolationType = Literal["street_vending", "non_motor_parking", "garbage"]
VIOLATION_TYPES: tuple[str, ...] = ("street_vending", "non_motor_parking", "garbage")
EvidenceKind = Literal["best_frame", "crop", "context", "after", "metadata"]


class GeoPoint(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    lat: float = Field(ge=-90, le=90, title="Latitude", description="WGS-84 degrees")
    lon: float = Field(ge=-180, le=180, title="Longitude", description="WGS-84 degrees")


class Location(BaseModel):
    """Where a problem is, in the city's own terms: district, street and point (点位)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    district: str = Field(min_length=1, title="District", description="Administrative district (区), used for monthly ranking")
    street: str = Field("", title="Street", description="Street or sub-district (街道)")
    point: str = Field(min_length=1, title="Point", description="The inspection point (点位) id or name; cases at the same point are the same spot")
    gps: GeoPoint | None = Field(None, title="GPS", description="Coordinates of the point, if known")


class EvidenceFile(BaseModel):
    """One evidence file as written by the engine; the case store copies it by content (sha256)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: EvidenceKind
    path: str = Field(description="Local path of the file when reported")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    taken_at: datetime = Field(description="Capture time of the frame it comes from")


class IncidentReport(BaseModel):
    """One real violation over time, as handed to the rectification ledger.

    `incident_id` is stable for the incident's whole life (and across re-runs of the same footage), so posting
    it again updates the same case instead of creating a new one.
    """

    model_config = ConfigDict(extra="forbid")

    incident_id: str = Field(min_length=1, max_length=200)
    type: ViolationType
    source: Literal["camera", "patrol"]
    camera_id: str | None = None
    zone_id: str | None = None
    location: Location
    owner: str | None = Field(None, description="Point owner (点位长) responsible for rectification")
    first_seen: datetime
    last_seen: datetime
    ended: bool = Field(False, description="True once the violation has been absent long enough to close the incident")
    severity: int = Field(1, ge=1, le=3)
    count: int = Field(1, ge=1, description="Objects behind the violation at its peak, e.g. parked bikes")
    score: float = Field(ge=0, le=1, description="Best detector score behind the violation")
    box: tuple[float, float, float, float] | None = Field(None, description="xyxy pixels on the camera frame (camera incidents)")
    evidence: list[EvidenceFile] = Field(default_factory=list)

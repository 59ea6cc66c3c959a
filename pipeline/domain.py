"""The shared vocabulary at module boundaries: where a thing is, what was found, and the files that prove it.

These are the pydantic models that cross from the violation engine to the case ledger (and over the API),
so they validate on the way in. The engine's working state lives in dataclasses next to its logic.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


@dataclass(frozen=True)
class ViolationKind:
    """What the ledger and the people need to know about one violation type, whatever rule finds it."""

    name: str
    label: str  # shown to reviewers and in reports: Chinese term first, then English
    deadline_h: float  # default hours from dispatch (交办) to rectification; the ledger config may override it
    whole_zone: bool = False  # one incident per zone: the count (of bikes) is the spot's state, not each object


# The one place a violation type is declared. A new type is one entry here plus one rule file in
# `pipeline/rules/` (its thresholds model and its function); everything else reads this table.
VIOLATION_TYPES: dict[str, ViolationKind] = {
    k.name: k
    for k in (
        ViolationKind("street_vending", "占道经营 street vending", deadline_h=2.0),
        ViolationKind("non_motor_parking", "非机动车乱停放 messy parking", deadline_h=4.0, whole_zone=True),
        ViolationKind("garbage", "暴露垃圾 exposed garbage", deadline_h=24.0),
        ViolationKind("materials_piled", "乱堆物料 materials piled", deadline_h=12.0),
    )
}


def register_violation_type(kind: ViolationKind) -> ViolationKind:
    """Add a type at run time (a plug-in rule, a test); the same as adding an entry to `VIOLATION_TYPES`."""
    if kind.name in VIOLATION_TYPES and VIOLATION_TYPES[kind.name] != kind:
        raise ValueError(f"violation type {kind.name!r} is already declared differently")
    VIOLATION_TYPES[kind.name] = kind
    return kind


def _known_type(value: str) -> str:
    if value not in VIOLATION_TYPES:
        raise ValueError(f"unknown violation type {value!r}; known: {', '.join(VIOLATION_TYPES)}")
    return value


class _TypeEnumSchema:
    """The JSON schema lists the declared types as an enum, read when the schema is built (not at import)."""

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> dict:
        return handler(core_schema) | {"enum": list(VIOLATION_TYPES)}


ViolationType = Annotated[str, AfterValidator(_known_type), _TypeEnumSchema()]
EvidenceKind = Literal["best_frame", "crop", "context", "after", "metadata"]


# Characters no name or note needs, as regex classes (the same text validates and goes into the JSON schema's
# `pattern`, so a client or a fuzzer knows what is refused). Control characters: a NUL cannot be stored in a
# PostgreSQL text column, the others are never part of a name. Bidi controls (U+202A-U+202E, U+2066-U+2069) turn
# the text around them on the review page ("right-to-left override"); zero-width and other invisible format
# characters make two names that look the same differ. Free text (a note, a reason) keeps tab and line breaks.
_CONTROL = "\\x00-\\x1f\\x7f-\\x9f"
_FREE_CONTROL = "\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f"
_BIDI = "\\u202a-\\u202e\\u2066-\\u2069"
_INVISIBLE = "\\u00ad\\u061c\\u180e\\u200b-\\u200f\\u2028\\u2029\\u2060-\\u2064\\u206a-\\u206f\\ufeff\\ufff9-\\ufffb"
PLACE_TEXT_PATTERN = f"^[^{_CONTROL}{_BIDI}{_INVISIBLE}]*$"
FREE_TEXT_PATTERN = f"^[^{_FREE_CONTROL}{_BIDI}]*$"


_BIDI_CHAR = re.compile(f"[{_BIDI}]")


class _Refused:
    """An AfterValidator that names the first refused character and what kind it is, with the pattern in the
    JSON schema."""

    def __init__(self, pattern: str, note: str = "") -> None:
        self.bad = re.compile(pattern.replace("^[^", "[", 1).removesuffix("]*$") + "]")
        self.pattern, self.note = pattern, note

    def __call__(self, value: str) -> str:
        found = self.bad.search(value)
        if found is not None:
            c = found.group()
            if ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0:
                kind, name = "control characters", ""
            else:
                kind = "bidirectional control characters" if _BIDI_CHAR.match(c) else "invisible characters"
                name = " " + unicodedata.name(c, "")
            note = self.note if kind == "control characters" else ""
            raise ValueError(f"must not contain {kind} (found U+{ord(c):04X}{name.rstrip()} at position {found.start()}){note}")
        return value

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> dict:
        return handler(core_schema) | {"pattern": self.pattern}


_place_text = _Refused(PLACE_TEXT_PATTERN)
_free_text = _Refused(FREE_TEXT_PATTERN, "; tab and line breaks are fine")


PlaceText = Annotated[str, AfterValidator(_place_text), _place_text]
"""A name or id of a place or person: no control characters (NUL, newlines, ...), no bidi controls (a
right-to-left override), no zero-width or other invisible characters."""

FreeText = Annotated[str, AfterValidator(_free_text), _free_text]
"""A note or a reason: any text with its line breaks, but no other control characters and no bidi controls."""


class GeoPoint(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    lat: float = Field(ge=-90, le=90, title="Latitude", description="WGS-84 degrees")
    lon: float = Field(ge=-180, le=180, title="Longitude", description="WGS-84 degrees")


class Location(BaseModel):
    """Where a problem is, in the city's own terms: district, street and point (点位)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    district: PlaceText = Field(min_length=1, title="District", description="Administrative district (区), used for monthly ranking")
    street: PlaceText = Field("", title="Street", description="Street or sub-district (街道)")
    point: PlaceText = Field(min_length=1, title="Point", description="The inspection point (点位) id or name; cases at the same point are the same spot")
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
    owner: PlaceText | None = Field(None, description="Point owner (点位长) responsible for rectification")
    first_seen: datetime
    last_seen: datetime
    ended: bool = Field(False, description="True once the violation has been absent long enough to close the incident")
    severity: int = Field(1, ge=1, le=3)
    count: int = Field(1, ge=1, description="Objects behind the violation at its peak, e.g. parked bikes")
    score: float = Field(ge=0, le=1, description="Best detector score behind the violation")
    box: tuple[float, float, float, float] | None = Field(None, description="xyxy pixels on the camera frame (camera incidents)")
    evidence: list[EvidenceFile] = Field(default_factory=list)


def local_time(at: datetime, tz: str) -> datetime:
    """`at` in the camera's zone; a naive time is taken to be the camera's local time already."""
    zone = ZoneInfo(tz)
    return at.replace(tzinfo=zone) if at.tzinfo is None else at.astimezone(zone)

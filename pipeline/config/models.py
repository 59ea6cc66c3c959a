"""Pydantic models for cameras, zones, schedules, fixtures and rules.

The `rules:` section and the zone kinds are composed from what the rule modules declare (`rules.registry`): each
rule's section is its own thresholds model, and this module names no rule and no zone kind.

Every field has a title and description, so the same models validate the YAML, document it
(`streetorder config schema`) and could render a settings UI, as Frigate's config does.
"""

from __future__ import annotations

from datetime import datetime, time
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model, field_validator, model_validator

from ..domain import VIOLATION_TYPES, FreeText, Location, ViolationType
from ..geometry import polygon_area, self_intersection
from ..rules import RULES, RuleOverride, RuleThresholds, zone_kind, zone_kinds
from .streams import StreamConfig

# The zone kinds the rules declare (`rules.registry`), in their order, then `ignore`.
ZoneKind = Literal[tuple(zone_kinds())]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _parse_window(value):
    """Accept '18:00-23:00' as shorthand for {start: 18:00, end: 23:00}."""
    if isinstance(value, str):
        start, sep, end = value.partition("-")
        if not sep:
            raise ValueError(f"time window '{value}' must look like 'HH:MM-HH:MM'")
        return {"start": start.strip(), "end": end.strip()}
    return value


class TimeWindow(_Model):
    """A daily time window; it may cross midnight (22:00-02:00)."""

    start: time = Field(title="Start", description="Local time the window opens (HH:MM)")
    end: time = Field(title="End", description="Local time the window closes (HH:MM); earlier than start means it ends the next day")
    days: tuple[Weekday, ...] | None = Field(None, title="Days", description="Weekdays the window opens on (mon..sun); all days if omitted")

    @model_validator(mode="after")
    def _not_empty(self) -> "TimeWindow":
        if self.start == self.end:
            raise ValueError("a time window needs start != end")
        return self

    def contains(self, at: datetime) -> bool:
        t = at.time()
        if self.start < self.end:
            return self.start <= t < self.end and self._day_ok(at.weekday())
        if t >= self.start:  # evening part, opened today
            return self._day_ok(at.weekday())
        if t < self.end:  # small hours, opened yesterday
            return self._day_ok((at.weekday() - 1) % 7)
        return False

    def _day_ok(self, weekday: int) -> bool:
        return self.days is None or WEEKDAYS[weekday] in self.days


Window = Annotated[TimeWindow, BeforeValidator(_parse_window)]


class Schedule(_Model):
    """When the activity a zone forbids is allowed anyway (a night market from 18:00 to 23:00)."""

    allowed: tuple[Window, ...] = Field((), title="Allowed windows", description="While any window is open, the zone's rule does not fire")

    def allows(self, at: datetime) -> bool:
        return any(w.contains(at) for w in self.allowed)


def _parse_tiles(value):
    """Accept '2x2' (columns x rows) as shorthand for [2, 2]."""
    if isinstance(value, str):
        cols, sep, rows = value.lower().partition("x")
        if not sep or not cols.strip().isdigit() or not rows.strip().isdigit():
            raise ValueError(f"tiles '{value}' must look like '2x2' (columns x rows)")
        return (int(cols), int(rows))
    return value


class SlicingConfig(_Model):
    """Sliced inference: the detector also runs on overlapping tiles, for small and dense objects (a heap of
    parked bikes). On a camera the tiles cover the whole frame; on a zone, the zone's bounding box. The full
    frame always runs too; boxes are merged by NMS. Costs 1 + columns x rows detector runs per frame and region."""

    enabled: bool = Field(True, title="Enabled", description="Run the tiles; false keeps the settings but runs the full frame only")
    tiles: Annotated[tuple[int, int], BeforeValidator(_parse_tiles)] = Field(
        (2, 2), title="Tiles", description="Columns and rows of tiles, as [2, 2] or '2x2'; each at most 6"
    )
    overlap: float = Field(0.2, ge=0, le=0.5, title="Overlap", description="Share of a tile's width and height that it shares with its neighbour (0..0.5)")

    @field_validator("tiles")
    @classmethod
    def _tiles(cls, v):
        if not all(1 <= n <= 6 for n in v):
            raise ValueError(f"tiles must be 1..6 columns and 1..6 rows, got {v[0]}x{v[1]}")
        if v == (1, 1):
            raise ValueError("tiles 1x1 is the full frame alone; use at least 2 columns or rows (or enabled: false)")
        return v


def _kind_description() -> str:
    """The kinds as a list ending with the mask: '..., garbage_watch, or ignore (a mask)'."""
    kinds = zone_kinds().values()
    return ", ".join([*(k.name for k in kinds if not k.mask), *(f"or {k.name} (a mask)" for k in kinds if k.mask)])


class ZoneConfig(_Model):
    """A polygon on one camera's view, with a kind and an optional schedule."""

    id: str = Field(min_length=1, title="Zone id", description="Unique within the camera")
    kind: ZoneKind = Field(title="Kind", description=_kind_description())
    polygon: tuple[tuple[float, float], ...] = Field(title="Polygon", description="Vertices in order, as [x, y]; at least 3")
    coords: Literal["pixel", "normalized"] = Field("pixel", title="Coordinates", description="pixel (of the camera resolution) or normalized 0..1")
    schedule: Schedule | None = Field(None, title="Schedule", description="Windows when the zone's rule is suspended")
    point: str | None = Field(None, title="Point", description="Inspection point (点位) of this zone, if not the camera's")
    overrides: dict[ViolationType, RuleOverride] = Field(
        default_factory=dict, title="Rule overrides", description="Thresholds for rules in this zone"
    )
    slicing: SlicingConfig | None = Field(
        None, title="Slicing", description="Also detect on overlapping tiles of this zone's bounding box (small or dense objects in it)"
    )

    @field_validator("polygon")
    @classmethod
    def _simple_polygon(cls, v):
        if len(v) < 3:
            raise ValueError(f"a polygon needs at least 3 points, got {len(v)}")
        crossing = self_intersection(v)
        if crossing:
            i, j = crossing
            raise ValueError(f"polygon crosses itself: edge {i} ({v[i]}->{v[(i + 1) % len(v)]}) meets edge {j} ({v[j]}->{v[(j + 1) % len(v)]})")
        if polygon_area(v) <= 0:
            raise ValueError("polygon has zero area (all points on one line)")
        return v

    @model_validator(mode="after")
    def _slicing_kind(self) -> "ZoneConfig":
        if self.slicing is not None and zone_kind(self.kind).mask:
            raise ValueError(f"zone '{self.id}' is an {self.kind} zone (a mask): its detections are dropped, so slicing it makes no sense")
        return self

    def pixel_polygon(self, width: int, height: int, resolution: tuple[int, int]) -> list[tuple[float, float]]:
        """Vertices in the pixels of a frame of `width` x `height` (pixel zones scale from the camera resolution)."""
        if self.coords == "normalized":
            return [(x * width, y * height) for x, y in self.polygon]
        sx, sy = width / resolution[0], height / resolution[1]
        return [(x * sx, y * sy) for x, y in self.polygon]


class Fixture(_Model):
    """A known static thing allowed where it stands (a bin that belongs there, a permitted kiosk, a bike rack),
    or a post the model mistakes for something: detections that match it are dropped."""

    id: str = Field(min_length=1, title="Fixture id")
    box: tuple[float, float, float, float] = Field(title="Box", description="x1, y1, x2, y2")
    coords: Literal["pixel", "normalized"] = Field("pixel", title="Coordinates")
    classes: tuple[str, ...] | None = Field(
        None, min_length=1, title="Classes", description="Classes it suppresses; all if omitted (an empty list would read as 'all' too, so it is refused)",
    )
    min_iou: float = Field(0.4, gt=0, le=1, title="Minimum IoU", description="How well a detection must match the fixture box")
    reason: FreeText = Field("", title="Reason", description="Why it is allowed, e.g. 'permitted kiosk' or 'rejected case 42: bollard'")

    @model_validator(mode="after")
    def _ordered(self) -> "Fixture":
        x1, y1, x2, y2 = self.box
        if x2 <= x1 or y2 <= y1:
            raise ValueError(f"box {self.box} must have x2 > x1 and y2 > y1")
        return self

    def pixel_box(self, width: int, height: int, resolution: tuple[int, int]) -> tuple[float, float, float, float]:
        x1, y1, x2, y2 = self.box
        sx, sy = (width, height) if self.coords == "normalized" else (width / resolution[0], height / resolution[1])
        return (x1 * sx, y1 * sy, x2 * sx, y2 * sy)


class GateConfig(_Model):
    """The change gate of the night job: a small grayscale copy of each sampled frame, inside the camera's zones,
    is compared with the last frame the detector ran on; while nothing changed, that frame's detections are reused
    and the job may step several sampling intervals ahead (stepping back to the first changed one when a change
    shows). Brightness is matched before comparing and the copy is blurred, so sensor noise and slow drift of a
    night picture do not count as change."""

    enabled: bool = Field(True, title="Enabled", description="Off: the detector runs on every sampled frame (as `streetorder run --no-gate`)")
    size: int = Field(160, ge=32, le=1024, title="Gate size (px)", description="Long side of the grayscale copy that is compared")
    blur_sigma: float = Field(1.0, ge=0, le=10, title="Blur (px)", description="Gaussian blur of the copy, in its own pixels (sensor noise)")
    pixel_threshold: float = Field(
        14.0, gt=0, le=255, title="Pixel threshold", description="Gray levels (0..255), after brightness matching, by which a pixel must differ to count as changed"
    )
    min_changed_fraction: float = Field(
        0.002, gt=0, le=1, title="Changed share", description="Share of the zone pixels that must change for the frame to count as changed"
    )
    refresh_s: float = Field(60.0, gt=0, title="Refresh every (s)", description="The detector runs at least this often (video time), changed or not")
    max_stride_s: float = Field(
        30.0,
        ge=0,
        title="Largest step (s)",
        description="How far ahead the job may jump on a static scene (0: never); also kept to a quarter of the shortest dwell time of the rules",
    )

    @model_validator(mode="after")
    def _stride_within_refresh(self) -> "GateConfig":
        if self.max_stride_s > self.refresh_s:
            raise ValueError(f"max_stride_s ({self.max_stride_s}) must not exceed refresh_s ({self.refresh_s}): a refresh could fall inside a step")
        return self


class StaticConfig(_Model):
    """Static-object evidence (物品遗留): per camera, a long-term picture of the empty scene and a short-term one,
    on a small colour copy of each frame the detector ran on; what is new and has stayed put becomes a
    `static_object` among the frame's detections, for the rules of zones that read it (`no_vending`). Sensor noise,
    brightness drift, shadows, dark, frozen and corrupt frames are not objects; a moved camera starts afresh."""

    enabled: bool = Field(
        True, title="Enabled", description=f"Runs on cameras with a zone whose rule reads static objects ({', '.join(k.name for k in zone_kinds().values() if k.static)})"
    )
    size: int = Field(192, ge=32, le=1024, title="Copy size (px)", description="Long side of the colour copy the pictures are kept at")
    blur_sigma: float = Field(1.0, ge=0, le=10, title="Blur (px)", description="Gaussian blur of the copy, in its own pixels (sensor noise)")
    pixel_threshold: float = Field(
        20.0, gt=0, le=255, title="Brightness threshold", description="Gray levels (0..255), after brightness matching, by which a pixel must differ to be new"
    )
    colour_threshold: float = Field(16.0, gt=0, le=255, title="Colour threshold", description="Chroma difference (|Cr| + |Cb|) that makes a pixel new in daylight")
    short_s: float = Field(30.0, gt=0, title="Short-term picture (s)", description="Time constant of the picture that absorbs what stops moving")
    long_s: float = Field(900.0, gt=0, title="Long-term picture (s)", description="Time constant with which the empty scene follows the light where nothing new stands")
    min_still_s: float = Field(20.0, ge=0, title="Still for (s)", description="How long a new region must have stood still to be reported at all (the rules' dwell comes on top)")
    min_area: float = Field(0.0015, ge=0, le=1, title="Minimum area", description="Smallest static object, as a share of the frame")
    max_area: float = Field(0.35, gt=0, le=1, title="Maximum area", description="Largest static object, as a share of the frame")
    absorb_after_s: float = Field(4 * 3600.0, gt=0, title="Part of the scene after (s)", description="Something new that stays this long becomes part of the empty scene")
    reset_fraction: float = Field(
        0.5, gt=0, le=1, title="Moved-camera share", description="Share of the picture new at once that means the camera moved (or switched day/night mode)"
    )
    reset_after: int = Field(2, ge=1, title="Moved-camera frames", description="Frames in a row that must show it before the pictures start afresh")
    max_gap_s: float = Field(120.0, gt=0, title="Largest gap (s)", description="The most time one frame may count; dark and frozen stretches beyond it do not count as staying")
    dark_luma: float = Field(12.0, ge=0, le=255, title="Dark below", description="Mean brightness under which a frame is dark and not learnt")
    min_contrast: float = Field(3.0, ge=0, le=255, title="Minimum contrast", description="Brightness spread under which a frame is uniform (no signal) and not learnt")

    @model_validator(mode="after")
    def _areas(self) -> "StaticConfig":
        if self.min_area >= self.max_area:
            raise ValueError(f"min_area ({self.min_area}) must be below max_area ({self.max_area})")
        return self


class CameraConfig(_Model):
    """One fixed camera: where it is, who owns the spot, and its zones and fixtures."""

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$", title="Camera id")
    name: str = Field("", title="Name")
    location: Location = Field(title="Location", description="District, street, point (点位) and GPS")
    owner: str | None = Field(None, title="Point owner", description="点位长, who must rectify problems here")
    resolution: tuple[int, int] = Field(title="Resolution", description="Width and height of the frames pixel coordinates refer to")
    timezone: str = Field("Asia/Shanghai", title="Time zone", description="Local time for schedules")
    zones: tuple[ZoneConfig, ...] = Field((), title="Zones")
    fixtures: tuple[Fixture, ...] = Field((), title="Fixtures")
    slicing: SlicingConfig | None = Field(None, title="Slicing", description="Also detect on overlapping tiles of the whole frame (small or dense objects anywhere)")
    gate: GateConfig = Field(default_factory=GateConfig, title="Change gate", description="Night job: detect only when the picture inside the zones changed")
    static: StaticConfig = Field(default_factory=StaticConfig, title="Static objects", description="What is new in the view and stays put, whatever it is (stalls, piled goods)")
    stream: StreamConfig | None = Field(
        None, title="Stream", description="Where `streetorder serve` pulls this camera's pictures from itself (RTSP or HTTP snapshots); without it, frames are POSTed to /frames",
    )

    @field_validator("resolution")
    @classmethod
    def _positive(cls, v):
        if v[0] <= 0 or v[1] <= 0:
            raise ValueError(f"resolution must be positive, got {v}")
        return v

    @model_validator(mode="after")
    def _zones_fit(self) -> "CameraConfig":
        ids = [z.id for z in self.zones]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"zone ids must be unique per camera; repeated: {dupes}")
        w, h = self.resolution
        for n, z in enumerate(self.zones):
            limit = (1.0, 1.0) if z.coords == "normalized" else (w, h)
            for k, (x, y) in enumerate(z.polygon):
                if not (0 <= x <= limit[0] and 0 <= y <= limit[1]):
                    raise ValueError(
                        f"zones[{n}] '{z.id}': point {k} ({x}, {y}) lies outside the frame "
                        f"({'0..1 normalized' if z.coords == 'normalized' else f'{w}x{h} pixels'})"
                    )
        for n, f in enumerate(self.fixtures):
            limit = (1.0, 1.0) if f.coords == "normalized" else (w, h)
            x1, y1, x2, y2 = f.box
            if not (0 <= x1 and 0 <= y1 and x2 <= limit[0] and y2 <= limit[1]):
                raise ValueError(f"fixtures[{n}] '{f.id}': box {f.box} lies outside the frame")
        return self


class _RulesSection(_Model):
    """One section per violation type, named by the type. Which classes feed which rule is read from here
    (`classes_for`, `used_classes`) and nowhere else."""

    model_config = ConfigDict(extra="allow", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _registered_rules(cls, data):
        """A rule registered after this model was composed (a plug-in added at run time, a test) is validated
        with its own thresholds model too."""
        if not isinstance(data, dict):
            return data
        out = dict(data)
        late = [t for t in RULES if t not in cls.model_fields]
        for name, value in data.items():
            if name in cls.model_fields:
                continue
            if name not in late:
                raise ValueError(f"unknown rule '{name}'; rules: {', '.join([*cls.model_fields, *late])}")
            model = RULES[name].thresholds
            try:
                out[name] = value if isinstance(value, model) else model.model_validate(value or {})
            except ValidationError as e:  # located under the rule's section, as a field's errors are
                raise ValidationError.from_exception_data(e.title, [{**err, "loc": (name, *err["loc"])} for err in e.errors()]) from None
        return out

    def rule(self, type_: ViolationType) -> RuleThresholds:
        """The thresholds of the rule for `type_` (a registered rule left out of the YAML gets its defaults)."""
        if type_ in type(self).model_fields:
            return getattr(self, type_)
        if type_ in (self.model_extra or {}):
            return self.model_extra[type_]
        if type_ in RULES:
            return RULES[type_].thresholds()
        raise KeyError(f"no rule for violation type '{type_}' (declared: {', '.join(VIOLATION_TYPES)})")

    def types(self) -> tuple[str, ...]:
        """Every declared violation type that has a rule."""
        return tuple(t for t in VIOLATION_TYPES if t in type(self).model_fields or t in RULES)

    def classes_for(self, type_: ViolationType) -> tuple[str, ...]:
        """The detector classes that are the evidence of `type_` (what a rejected case's fixture suppresses)."""
        return self.rule(type_).evidence_classes()

    def used_classes(self) -> set[str]:
        """Every class an enabled rule reads: what the serving model must be able to detect."""
        return {c for t in self.types() if (r := self.rule(t)).enabled for c in r.used_classes()}


# Composed from the rules' declarations: one field per registered rule, its thresholds model as the type.
RulesConfig = create_model(
    "RulesConfig",
    __base__=_RulesSection,
    __doc__=_RulesSection.__doc__,
    __module__=__name__,
    **{t: (RULES[t].thresholds, Field(default_factory=RULES[t].thresholds, title=RULES[t].title or None)) for t in VIOLATION_TYPES if t in RULES},
)


class TrackingConfig(_Model):
    """ByteTrack settings, in seconds of frame time so they hold at any sampling rate."""

    lost_track_s: float = Field(30.0, gt=0, title="Lost track buffer (s)", description="How long a track survives without detections")
    min_iou: float = Field(0.1, gt=0, le=1, title="Match IoU", description="Association threshold; stationary objects match at any frame rate")
    activation_score: float = Field(0.25, ge=0, le=1, title="Activation score", description="Score a detection needs to start a track")
    high_score: float = Field(0.5, ge=0, le=1, title="High score", description="ByteTrack's split between first- and second-stage matches")
    still_tolerance: float = Field(0.25, gt=0, title="Stillness tolerance", description="Movement, in box diagonals, that still counts as standing still")
    relink_s: float = Field(120.0, ge=0, title="Re-link window (s)", description="A new track where a still object was lost this recently inherits its dwell")


class IncidentConfig(_Model):
    end_after_s: float = Field(120.0, gt=0, title="End after (s)", description="An incident ends after its violation is absent this long")
    match_iou: float = Field(0.2, gt=0, le=1, title="Match IoU", description="Overlap that makes a violation the same incident")
    report_every_s: float = Field(300.0, gt=0, title="Re-report every (s)", description="An open incident is re-reported (last seen, evidence) this often, and at once when it gets worse")


class EvidenceConfig(_Model):
    enabled: bool = Field(True, title="Write evidence")
    blur_faces: bool = Field(True, title="Blur faces", description="Blur the head region of every person box")
    blur_plates: bool = Field(True, title="Blur plates", description="Blur the plate band of every vehicle box")
    head_fraction: float = Field(0.3, gt=0, le=1, title="Head fraction", description="Top share of a person box treated as the head")
    crop_margin: float = Field(0.3, ge=0, le=2, title="Crop margin", description="Margin around the violation box, in box sizes")
    jpeg_quality: int = Field(90, ge=30, le=100, title="JPEG quality")
    edge_margin_px: int = Field(4, ge=0, title="Edge margin (px)", description="A box this close to the frame edge counts as cut")


class PatrolConfig(_Model):
    radius_m: float = Field(30.0, gt=0, title="Dedup radius (m)", description="Photos of one violation type this close are one incident")
    window_s: float = Field(6 * 3600.0, gt=0, title="Dedup window (s)", description="...if taken within this time of the incident's last photo")
    district: str = Field("unknown", title="Default district", description="District for photos whose GPS matches no camera point")
    timezone: str = Field("Asia/Shanghai", title="Time zone", description="Zone of photo times that carry none (EXIF times are local)")


class StreetOrderConfig(_Model):
    """The whole deployment: cameras plus rule, tracking, incident, evidence and patrol settings."""

    cameras: tuple[CameraConfig, ...] = Field((), title="Cameras")
    rules: RulesConfig = Field(default_factory=RulesConfig, title="Rules")
    tracking: TrackingConfig = Field(default_factory=TrackingConfig, title="Tracking")
    incidents: IncidentConfig = Field(default_factory=IncidentConfig, title="Incidents")
    evidence: EvidenceConfig = Field(default_factory=EvidenceConfig, title="Evidence")
    patrol: PatrolConfig = Field(default_factory=PatrolConfig, title="Patrol photos")
    fixtures_file: Path | None = Field(None, title="Fixtures file", description="Extra fixtures added by reviewers, per camera (YAML)")

    @model_validator(mode="after")
    def _unique_cameras(self) -> "StreetOrderConfig":
        ids = [c.id for c in self.cameras]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"camera ids must be unique; repeated: {dupes}")
        return self

    def camera(self, camera_id: str) -> CameraConfig:
        for c in self.cameras:
            if c.id == camera_id:
                return c
        raise KeyError(f"unknown camera '{camera_id}' (configured: {', '.join(c.id for c in self.cameras) or 'none'})")


def config_schema() -> dict:
    """The JSON schema of the whole config (`streetorder config schema`): every registered rule's section is
    described by its thresholds model, a rule registered after `RulesConfig` was composed included."""
    schema = StreetOrderConfig.model_json_schema()
    defs = schema.setdefault("$defs", {})
    for t in (t for t in VIOLATION_TYPES if t in RULES and t not in RulesConfig.model_fields):
        sub = RULES[t].thresholds.model_json_schema(ref_template="#/$defs/{model}")
        defs.update(sub.pop("$defs", {}))
        defs[sub["title"]] = sub
        defs["RulesConfig"]["properties"][t] = {"$ref": f"#/$defs/{sub['title']}", "title": RULES[t].title or sub["title"]}
    return schema

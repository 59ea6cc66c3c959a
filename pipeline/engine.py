"""The violation engine: (frame, timestamp) in, violations and incident reports out.

One engine serves the night batch job and the live service alike. It is driven by each frame's own timestamp,
never by the wall clock, so a night of footage replayed in ten minutes gives the same incidents (and the same
incident ids) as the live feed did.

The engine only orchestrates: the live config (`config.ConfigSource`), detectors (`detect`), zones, fixtures and
tracking (`scene`), rules, incidents and evidence each live in their own module. `live.intake.Intake` (live) and
`night.writer` (the night job) put the engine's reports into the case ledger.
"""

from __future__ import annotations

import io
import pickle
import weakref
import zlib
from dataclasses import dataclass, field
from functools import cached_property
from datetime import datetime
from pathlib import Path

import numpy as np
import supervision as sv

from .config import CameraConfig, ConfigSource, StreetOrderConfig
from .detect import Detector
from .detect.plan import frame_detector
from .domain import IncidentReport, Location, local_time
from .evidence import EvidenceWriter
from .scene.background import StaticScene, reads_static, static_detections
from .scene.fixtures import fixture_mask
from .source.frames import Frame
from .geometry import haversine_m
from .incidents import CameraIncidents, Incident, IncidentChanges, PatrolIncidents, Snapshot, snapshot_quality
from .rules import FrameContext, Violation, evaluate, present
from .scene.track import CameraTracker, concat
from .scene.zones import CameraZones


@dataclass
class FrameResult:
    """What one frame produced."""

    detections: sv.Detections
    violations: list[Violation] = field(default_factory=list)
    opened: list[IncidentReport] = field(default_factory=list)
    updated: list[IncidentReport] = field(default_factory=list)
    ended: list[IncidentReport] = field(default_factory=list)
    raw: sv.Detections | None = None  # every detection before ignore zones, fixtures and tracking (for blurring)
    context: FrameContext | None = field(default=None, repr=False)  # the rules' view of the frame, for `present`

    @cached_property
    def present(self) -> list[tuple[str, tuple[float, float, float, float]]]:
        """Each rule's evidence as it stands in this frame, zones and dwell aside: auto-verification's "is the
        problem still there?". Worked out when asked, in the frame's own step: only a camera with cases to check
        asks (on a static night it was a fifth of the engine's work on the gate's reused ticks)."""
        return present(self.context) if self.context is not None else []

    def __getstate__(self) -> dict:
        """Pickled (a Ray camera owner's reply) with `present` worked out and without the rules' context."""
        state = dict(self.__dict__)
        state["present"], state["context"] = self.present, None
        return state

    @property
    def reports(self) -> list[IncidentReport]:
        return self.opened + self.updated + self.ended


@dataclass
class _Camera:
    tracker: CameraTracker
    incidents: CameraIncidents
    camera: CameraConfig | None = None  # as last seen: flush still reports a camera that a reload removed
    zones: CameraZones | None = None
    zones_key: tuple = ()
    static: StaticScene | None = None  # what is new in the view and stays put (cameras whose zones read it)
    static_key: tuple = ()
    static_dets: tuple | None = None  # (objects list, config version, their detections): reused while both are the same

    def saved(self) -> tuple:
        """What a snapshot keeps of the camera (zones are rebuilt from the config, detections come again)."""
        return (self.tracker, self.incidents, self.camera, self.static, self.static_key)

    @classmethod
    def restored(cls, saved: tuple) -> _Camera:
        """The camera from `saved` (a record from before static scenes holds three items)."""
        tracker, incidents, camera, *static = saved
        cam = cls(tracker, incidents, camera)
        if static:
            cam.static, cam.static_key = static
        return cam


@dataclass
class _Reported:
    at: datetime
    severity: int
    count: int
    best_version: int
    evidence: list


class Engine:
    """Turns timestamped frames into incidents.

    >>> engine = Engine("datasets/sample-city.yaml", detector=load_cue_cascade(), evidence_dir=Path("var/evidence"))
    >>> result = engine.process(Frame(image, at, camera_id="cam-lane"))
    >>> for report in result.reports: store.post_incident(report)  # what `Intake` does, with auto-verification

    `detector` is the shared model (`detect.load_detector`, or `detect.cascade.load_cue_cascade` for the street
    model with its cue model); each camera's frames go through it as `detect.plan.frame_detector` wraps it.
    Without a detector, pass the detections with each frame.
    """

    def __init__(self, config: ConfigSource | StreetOrderConfig | str | Path, detector: Detector | None = None, evidence_dir: Path | None = None, evidence_sink: dict[str, bytes] | None = None) -> None:
        self.source = config if isinstance(config, ConfigSource) else ConfigSource(config)
        self.detector = detector
        self.evidence_dir = Path(evidence_dir) if evidence_dir else None
        self.evidence_sink = evidence_sink  # evidence bytes by sha256 instead of files (see EvidenceWriter)
        self.cameras: dict[str, _Camera] = {}
        self.patrol = PatrolIncidents(self.config.patrol)
        self._reported: dict[str, _Reported] = {}
        self._zips = _FrameZips()  # best frames compressed once for all the snapshots they are in

    @property
    def config(self) -> StreetOrderConfig:
        return self.source.get()

    # -- cameras ---------------------------------------------------------------------------------------------

    def _camera_state(self, camera: CameraConfig, width: int, height: int) -> _Camera:
        cfg = self.config
        state = self.cameras.get(camera.id)
        if state is None:
            state = self.cameras[camera.id] = _Camera(CameraTracker(cfg.tracking), CameraIncidents(camera.id, cfg.incidents))
        state.camera = camera
        key = (self.source.version, width, height)
        if state.zones_key != key:  # new frame size or a reloaded config
            state.zones, state.zones_key = CameraZones(camera, width, height), key
            state.incidents.cfg = cfg.incidents
            # the long-term picture outlives config edits that do not touch it (a new fixture, a rule threshold)
            static_key = (width, height, camera.static, tuple(z.config.polygon for z in state.zones.masks)) if reads_static(camera) else ()
            if state.static_key != static_key:
                state.static = StaticScene(camera.static, width, height, ignore=state.zones.ignore_mask(width, height)) if static_key else None
                state.static_key = static_key
        return state

    def _detect(self, frame: Frame, detections: sv.Detections | None, camera: CameraConfig | None = None) -> sv.Detections:
        if detections is not None:
            return detections
        if self.detector is None:
            raise ValueError("the engine has no detector: pass detections with each frame")
        return frame_detector(self.detector, camera, frame.image).detect([frame.image])[0]

    def process(self, frame: Frame, detections: sv.Detections | None = None) -> FrameResult:
        """One frame of a fixed camera. Frames of a camera must arrive in time order."""
        cfg = self.config
        if frame.camera_id is None:
            raise ValueError("a camera frame needs camera_id (patrol photos go to process_photo)")
        camera = cfg.camera(frame.camera_id)
        height, width = frame.image.shape[:2]
        state = self._camera_state(camera, width, height)
        at = local_time(frame.at, camera.timezone)

        raw = self._detect(frame, detections, camera)
        keep = ~state.zones.ignored(raw) & ~fixture_mask(raw, camera, width, height) if len(raw) else None
        dets = raw if keep is None or keep.all() else raw[keep]  # nothing to drop (most frames): no copy
        tracked = state.tracker.update(dets, at, reused=bool(frame.meta.get("reused")))
        if state.static is not None:
            tracked = self._with_static(state, frame, at, tracked, camera)
        ctx = FrameContext(at=at, width=width, height=height, detections=tracked, rules=cfg.rules, zones=state.zones)
        violations = evaluate(ctx)
        changes = state.incidents.update(at, violations, lambda v: Snapshot(frame.image, at, v.box, tracked, v.members, snapshot_quality(v, width, height, cfg.evidence.edge_margin_px), raw, frame.meta.get("model")))
        result = self._result(tracked, violations, changes, raw, camera=camera, zones=state.zones)
        result.context = ctx
        return result

    def _with_static(self, state: _Camera, frame: Frame, at: datetime, tracked: sv.Detections, camera: CameraConfig) -> sv.Detections:
        """The static objects standing now, after ignore zones and fixtures, appended to the tracked detections
        (they carry their own `still_since`: when they appeared). Who comes by them and what covers them is noted
        on every frame."""
        static = state.static
        objects = static.update(frame.image, at, reused=bool(frame.meta.get("reused")))
        vending = self.config.rules.street_vending
        static.observe(tracked, vending.person_classes, vending.person_reach, vending.explained_share)
        if not objects:
            return tracked
        # the change gate's reuses repeat the same objects (the same list): build and filter their detections once
        cached = state.static_dets
        if cached is None or cached[0] is not objects or cached[1] != self.source.version:
            dets = static_detections(objects, tracked)
            width, height = static.full
            keep = ~state.zones.ignored(dets) & ~fixture_mask(dets, camera, width, height)
            state.static_dets = cached = (objects, self.source.version, dets if keep.all() else dets[keep])
        dets = cached[2]
        if not len(dets):
            return tracked
        if not len(tracked):
            return dets
        for k in dets.data.keys() - tracked.data.keys():  # one set of data keys for the merged frame
            tracked.data[k] = np.full(len(tracked), None, dtype=object)
        return concat([tracked, dets])

    # -- patrol photos ---------------------------------------------------------------------------------------

    def patrol_location(self, frame: Frame) -> Location:
        """A patrol photo belongs to the nearest camera point within the dedup radius, else to a GPS point."""
        cfg = self.config
        if frame.gps is None:
            raise ValueError(f"{frame.source or 'photo'}: a patrol photo needs GPS (EXIF GPS or given with the upload)")
        near = [
            (haversine_m(frame.gps.lat, frame.gps.lon, c.location.gps.lat, c.location.gps.lon), c)
            for c in cfg.cameras if c.location.gps is not None
        ]
        near = [x for x in near if x[0] <= cfg.patrol.radius_m]
        if near:
            loc = min(near, key=lambda x: x[0])[1].location
            return loc.model_copy(update={"gps": frame.gps})
        return Location(district=cfg.patrol.district, point=f"GPS {frame.gps.lat:.5f},{frame.gps.lon:.5f}", gps=frame.gps)

    def process_photo(self, frame: Frame, location: Location | None = None, detections: sv.Detections | None = None) -> FrameResult:
        """One patrol photo: no zones and no dwell; incidents deduplicated by place and time."""
        cfg = self.config
        location = location or self.patrol_location(frame)
        if location.gps is None and frame.gps is None:
            raise ValueError("a patrol photo needs GPS")
        gps = frame.gps or location.gps
        height, width = frame.image.shape[:2]
        at = local_time(frame.at, cfg.patrol.timezone)
        dets = self._detect(frame, detections)
        ctx = FrameContext(at=at, width=width, height=height, detections=dets, rules=cfg.rules, zones=None)
        violations = evaluate(ctx)
        self.patrol.cfg = cfg.patrol
        changes = self.patrol.update(at, gps, violations, lambda v: Snapshot(frame.image, at, v.box, dets, v.members, snapshot_quality(v, width, height, cfg.evidence.edge_margin_px), dets, frame.meta.get("model")))
        for inc in changes.opened:
            inc.meta["location"] = location
        return self._result(dets, violations, changes, dets, location=location)

    # -- reports ---------------------------------------------------------------------------------------------

    def _result(self, dets, violations, changes: IncidentChanges, raw: sv.Detections, camera: CameraConfig | None = None, zones: CameraZones | None = None, location: Location | None = None) -> FrameResult:
        result = FrameResult(dets, violations, raw=raw)
        polygons = [(z.id, z.kind, z.polygon) for z in zones.zones] if zones else []
        for kind, incidents in (("opened", changes.opened), ("updated", changes.updated), ("ended", changes.ended)):
            for inc in incidents:
                loc = self._location(inc, camera, location)
                prev = self._reported.get(inc.id)
                if kind == "updated" and prev and not (
                    inc.severity > prev.severity or inc.count > prev.count or (inc.last_seen - prev.at).total_seconds() >= self.config.incidents.report_every_s
                ):
                    continue
                getattr(result, kind).append(self._report(inc, camera, loc, polygons, prev))
        return result

    def _location(self, inc: Incident, camera: CameraConfig | None, location: Location | None) -> Location:
        if camera is None:
            return inc.meta.get("location") or location
        zone = next((z for z in camera.zones if z.id == inc.zone_id), None)
        return camera.location.model_copy(update={"point": zone.point}) if zone and zone.point else camera.location

    def _report(self, inc: Incident, camera: CameraConfig | None, loc: Location, polygons, prev: _Reported | None) -> IncidentReport:
        evidence = prev.evidence if prev else []
        if (self.evidence_dir or self.evidence_sink is not None) and (prev is None or prev.best_version != inc.best_version):
            evidence = EvidenceWriter(self.config.evidence, self.evidence_dir, self.evidence_sink).write(inc, loc, polygons)
        if inc.ended:
            self._reported.pop(inc.id, None)
        else:
            self._reported[inc.id] = _Reported(inc.last_seen, inc.severity, inc.count, inc.best_version, evidence)
        return IncidentReport(
            incident_id=inc.id,
            type=inc.type,
            source="camera" if camera else "patrol",
            camera_id=inc.camera_id,
            zone_id=inc.zone_id,
            location=loc,
            owner=camera.owner if camera else None,
            first_seen=inc.first_seen,
            last_seen=inc.last_seen,
            ended=inc.ended,
            severity=inc.severity,
            count=inc.count,
            score=round(min(max(inc.score, 0.0), 1.0), 4),
            box=tuple(round(float(v), 1) for v in inc.box) if camera else None,
            evidence=evidence,
        )

    # -- state ---------------------------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        """Every camera's tracker, open incidents and static scene, the patrol incidents and what was reported, as
        compressed bytes: what a resumed night needs to make the same cases (`restore`). Zones are rebuilt from the
        config. A best frame whose evidence was already written is never needed again (evidence is rewritten only
        when a better frame comes), so its pixels are left out: the snapshot stays small however long an incident
        lasts."""
        cameras = {cid: cam.saved() for cid, cam in self.cameras.items()}
        written = self._written([inc for cam in self.cameras.values() for inc in cam.incidents.open] + list(self.patrol.incidents))
        with self._zips:
            return _pack({"cameras": cameras, "patrol": self.patrol, "reported": self._reported}, written, _ENGINE_MAGIC, self._zips)

    def restore(self, blob: bytes) -> None:
        """Take up the state `snapshot` gave (a record from before static scenes holds three items a camera; one
        from before the raw arrays, plain zlib)."""
        state = _unpack(blob, _ENGINE_MAGIC) if blob.startswith(_ENGINE_MAGIC) else pickle.loads(zlib.decompress(blob))
        self.cameras.update({cid: _Camera.restored(saved) for cid, saved in state["cameras"].items()})
        self.patrol = state["patrol"]
        self._reported = state["reported"]

    def snapshot_camera(self, camera_id: str) -> bytes:
        """One camera's tracker, open incidents, static scene and the reported entries of its open incidents, as
        compressed bytes (as `snapshot`, without the pixels of best frames whose evidence was written): what the
        live service checkpoints to the ledger (`live.camera_state`), so that a restarted process, or another
        node taking the camera over, goes on with its dwell timers and open incidents (`restore_camera`).
        A camera the engine has not seen yet gives an empty state."""
        cam = self.cameras.get(camera_id)
        if cam is None:
            return _pack({"camera_id": camera_id, "camera": None, "reported": {}}, set(), _CAMERA_MAGIC)
        reported = {inc.id: r for inc in cam.incidents.open if (r := self._reported.get(inc.id)) is not None}
        return _pack({"camera_id": camera_id, "camera": cam.saved(), "reported": reported}, self._written(cam.incidents.open), _CAMERA_MAGIC)

    def restore_camera(self, camera_id: str, blob: bytes) -> None:
        """Take up one camera's state as `snapshot_camera` gave it, replacing what the engine held for that camera
        (its reported entries included); other cameras and the patrol are untouched. Raises ValueError for a
        state of another camera."""
        if not blob.startswith(_CAMERA_MAGIC):
            raise ValueError("not a camera state (Engine.snapshot_camera)")
        state = _unpack(blob, _CAMERA_MAGIC)
        if state.get("camera_id") != camera_id:
            raise ValueError(f"the state given for camera '{camera_id}' is camera '{state.get('camera_id')}'s")
        old = self.cameras.pop(camera_id, None)
        if old is not None:
            for inc in old.incidents.open:
                self._reported.pop(inc.id, None)
        if state["camera"] is not None:
            self.cameras[camera_id] = _Camera.restored(state["camera"])
        self._reported.update(state["reported"])

    def _written(self, incidents: list[Incident]) -> set[int]:
        """Ids of the best frames of `incidents` whose evidence was written as reported (their pixels are never
        needed again: evidence is rewritten only when a better frame comes), left out of a snapshot."""
        return {id(inc.best) for inc in incidents if inc.best is not None and (r := self._reported.get(inc.id)) and r.best_version == inc.best_version}

    def open_incidents(self) -> list[Incident]:
        return [inc for cam in self.cameras.values() for inc in cam.incidents.open]

    def flush(self) -> list[IncidentReport]:
        """The current state of every open camera incident, reported now (end of a batch of footage).

        They stay open: a violation still there when the footage ends has not ended.
        """
        out = []
        for state in self.cameras.values():
            camera = state.camera
            polygons = [(z.id, z.kind, z.polygon) for z in state.zones.zones] if state.zones else []
            for inc in state.incidents.open:
                out.append(self._report(inc, camera, self._location(inc, camera, None), polygons, self._reported.get(inc.id)))
        return out


_CAMERA_MAGIC = b"SOcam1"  # one camera's state (`snapshot_camera`)
_ENGINE_MAGIC = b"SOeng1"  # the whole engine's (`snapshot`, the night job's checkpoints)
_RAW_MIN = 64 * 1024  # arrays this big whose first bytes hardly compress stay out of zlib (see _pack)


def _pack(state: dict, written: set[int], magic: bytes, zips: _FrameZips | None = None) -> bytes:
    """A state as bytes: the pickle, zlib-compressed, with the big arrays that do not compress (a static scene's
    float pictures: running averages whose low bytes are noise, 0.9 MB of the 1.5 a camera) appended raw after
    it, out of band (pickle protocol 5). zlib spent 55 of 85 ms on those for a 15% saving; raw, a live
    checkpoint under the engine lock takes a fraction of that, and the static night's five checkpoints
    (docs/benchmarks.md)."""
    raw: list[bytes] = []

    def out_of_band(buf: pickle.PickleBuffer) -> bool:
        view = buf.raw()
        if view.nbytes >= _RAW_MIN and len(zlib.compress(view[:16384], 1)) > 0.8 * 16384:
            raw.append(view.tobytes())
            return False  # out of band
        return True

    out = io.BytesIO()
    _StatePickler(out, written, buffer_callback=out_of_band, zips=zips).dump(state)
    parts = [magic, len(raw).to_bytes(4, "big"), *(len(r).to_bytes(8, "big") for r in raw), *raw, zlib.compress(out.getvalue(), 1)]
    return b"".join(parts)


def _unpack(blob: bytes, magic: bytes) -> dict:
    view = memoryview(blob)
    at = len(magic)
    count = int.from_bytes(view[at : at + 4], "big")
    at += 4
    sizes = [int.from_bytes(view[at + 8 * i : at + 8 * i + 8], "big") for i in range(count)]
    at += 8 * count
    buffers = []
    for size in sizes:
        buffers.append(bytearray(view[at : at + size]))  # writable: the arrays go on changing after the restore
        at += size
    return pickle.loads(zlib.decompress(view[at:]), buffers=buffers)


class _FrameZips:
    """Best frames' pixels, compressed once for every state they are part of. A frame stays an incident's best
    across many checkpoints (a static night's checkpoints compressed the same 1080p frames again and again, 50-110
    ms each, a tenth of the job's main thread); its bytes are kept while it is in the latest state. A best frame
    is a decoded picture that nothing draws on (evidence draws on copies), so its identity stands for its pixels."""

    def __init__(self) -> None:
        self._zips: dict[int, tuple[weakref.ref, bytes, bool]] = {}
        self._used: dict[int, tuple[weakref.ref, bytes, bool]] = {}

    def __enter__(self) -> _FrameZips:
        self._used = {}
        return self

    def __exit__(self, *exc) -> None:
        self._zips = self._used  # what the latest state holds; the rest is let go

    def get(self, image: np.ndarray) -> tuple[bytes, bool]:
        """The frame's compressed pixels, and whether they are one channel of a grey picture (`_is_grey`)."""
        hit = self._zips.get(id(image)) or self._used.get(id(image))
        if hit is None or hit[0]() is not image:
            grey = _is_grey(image)
            hit = (weakref.ref(image), zlib.compress(np.ascontiguousarray(image[..., 0] if grey else image), 1), grey)
        self._used[id(image)] = hit
        return hit[1], hit[2]


def _is_grey(image: np.ndarray) -> bool:
    """A BGR picture whose three channels are the same (an infrared night camera's): its checkpoint keeps one
    channel, a third of the bytes to compress (a 1080p night frame: 45 -> 15 ms of zlib). A colour frame is told
    by a row in 32 first, for a fraction of the full comparison."""
    if image.ndim != 3 or image.shape[2] != 3:
        return False
    for view in (image[::32], image):
        if not ((view[..., 0] == view[..., 1]).all() and (view[..., 1] == view[..., 2]).all()):
            return False
    return True


def _unzipped_snapshot(data, shape: tuple[int, ...], dtype: str, *fields) -> Snapshot:
    image = np.frombuffer(bytearray(zlib.decompress(data)), dtype=dtype).reshape(shape)  # writable, as it was
    return Snapshot(image, *fields)


def _unzipped_grey_snapshot(data, shape: tuple[int, ...], dtype: str, *fields) -> Snapshot:
    """A grey best frame (`_is_grey`), kept as its one channel: the three channels again, writable."""
    channel = np.frombuffer(zlib.decompress(data), dtype=dtype).reshape(shape[:2])
    return Snapshot(np.repeat(channel[..., None], shape[2], axis=2), *fields)


class _StatePickler(pickle.Pickler):
    """Pickles a snapshot, leaving out the pixels of best frames whose evidence was written (`written`: their ids),
    and taking the others' compressed pixels from `zips` (out of band, next to the state's other raw arrays)."""

    def __init__(self, file, written: set[int], buffer_callback=None, zips: _FrameZips | None = None) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL, buffer_callback=buffer_callback)
        self.written = written
        self.zips = zips

    def reducer_override(self, obj):
        if type(obj) is not Snapshot:
            return NotImplemented
        fields = (obj.at, obj.box, obj.detections, obj.members, obj.quality, obj.private, obj.model)
        if id(obj) in self.written:
            return Snapshot, (None, *fields)
        image = obj.image
        if self.zips is not None and isinstance(image, np.ndarray) and image.nbytes >= _RAW_MIN:
            data, grey = self.zips.get(image)
            return _unzipped_grey_snapshot if grey else _unzipped_snapshot, (pickle.PickleBuffer(data), image.shape, image.dtype.str, *fields)
        return NotImplemented

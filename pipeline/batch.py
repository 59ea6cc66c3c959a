"""The night job: every camera's footage and the day's patrol photos through the engine into the ledger.

Footage is laid out by camera: `<root>/<camera id>/` holds that camera's videos (start time in the file name)
or timestamped snapshots, and `<root>/patrol/` holds patrol photos (time and GPS from EXIF). A file that
cannot be read is reported and skipped; the rest of the night still runs. A ledger that cannot take writes
(disk full, read-only) stops the night instead: every later file would fail the same way, and nothing already
posted is lost (re-running is idempotent).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from tqdm import tqdm

from .cases import LedgerError, StorageError
from .config import CameraConfig, StreetOrderConfig
from .detect import Detector
from .detect.plan import camera_detector
from .frames import VIDEO_SUFFIXES, Frame, VideoError, image_frames, photo_metadata, video_frames, video_start
from .images import IMAGE_SUFFIXES, ImageError, load_image
from .intake import Deferred, Intake, IntakeResult

PATROL = "patrol"


@dataclass
class BatchSummary:
    """What one night did. `failed` holds every file not (fully) used, each with its `path`, `error` (the reason)
    and `outcome`: skipped (never read), failed (unreadable) or partial (read up to a point). `read` lists the
    files that were used, `cases` what this run did to each case it posted to, and `windows` the span of frame
    times seen per camera: what the night report is built from."""

    files: int = 0
    failed: list[dict] = field(default_factory=list)
    read: list[dict] = field(default_factory=list)  # {"path", "camera_id", "frames"} per file used
    cases: dict[int, str] = field(default_factory=dict)  # case id -> created | reopened | updated | unchanged
    windows: dict[str, list[datetime]] = field(default_factory=dict)  # camera id -> [first, last] frame time
    stopped: str | None = None  # why the night stopped early (the ledger's storage), if it did
    frames: int = 0
    photos: int = 0
    violations: int = 0
    incidents_opened: int = 0
    incidents_ended: int = 0
    cases_created: int = 0
    cases_updated: int = 0
    cases_reopened: int = 0
    auto_verified: int = 0
    escalated: int = 0
    seconds: float = 0.0

    def add(self, r: IntakeResult) -> None:
        self.violations += len(r.frame.violations)
        self.incidents_opened += len(r.frame.opened)
        self.incidents_ended += len(r.frame.ended)
        self.add_posted(r.posted)
        self.auto_verified += sum(a.action == "verified" for a in r.verified)
        self.escalated += sum(a.action == "escalated" for a in r.verified)

    def add_posted(self, posted) -> None:
        for p in posted:
            self.cases_created += bool(p.created)
            self.cases_reopened += bool(p.reopened)
            self.cases_updated += bool(not p.created and p.changed)
            action = "created" if p.created else "reopened" if p.reopened else "updated" if p.changed else "unchanged"
            if _RANK[action] > _RANK.get(self.cases.get(p.case_id), -1):
                self.cases[p.case_id] = action

    def fail(self, path, error: str, outcome: str = "failed", **extra) -> None:
        self.failed.append({"path": str(path), "error": error, "outcome": outcome, **extra})

    def saw(self, frame: Frame) -> None:
        w = self.windows.setdefault(frame.camera_id or PATROL, [frame.at, frame.at])
        w[0], w[1] = min(w[0], frame.at), max(w[1], frame.at)

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["cases"] = {str(k): v for k, v in sorted(self.cases.items())}
        d["windows"] = {k: [t.isoformat() for t in w] for k, w in self.windows.items()}
        d["seconds"] = round(self.seconds, 1)
        d["frames_per_second"] = round(self.frames / self.seconds, 2) if self.seconds else None
        return d


_RANK = {"unchanged": 0, "updated": 1, "reopened": 2, "created": 3}  # what a case shows when several posts touched it


def discover(root: Path, config: StreetOrderConfig) -> tuple[dict[str, list[Path]], list[Path], list[dict]]:
    """Camera footage by camera id, patrol photos, and problems (unknown camera folders, stray files)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"footage folder not found: {root}")
    known = {c.id for c in config.cameras}
    cameras: dict[str, list[Path]] = {}
    patrol: list[Path] = []
    problems: list[dict] = []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            problems.append({"path": str(entry), "error": "files go in a folder named after their camera id (or 'patrol')", "outcome": "skipped"})
        elif entry.name == PATROL:
            patrol = sorted(p for p in entry.rglob("*") if p.is_file() and not p.name.startswith("."))
        elif entry.name not in known:
            problems.append({"path": str(entry), "error": f"no camera '{entry.name}' in the config (known: {', '.join(sorted(known)) or 'none'})", "outcome": "skipped"})
        else:
            cameras[entry.name] = sorted(p for p in entry.rglob("*") if p.is_file() and not p.name.startswith("."))
    return cameras, patrol, problems


def _detect(frames: list[Frame], detector: Detector, camera: CameraConfig | None) -> list:
    """One batch of one camera's frames, each through the detector its camera asks for (`camera_detector`:
    the same one unless the camera slices; frames of one size share a call)."""
    if camera is None:
        return detector.detect([f.image for f in frames])
    out: list = [None] * len(frames)
    by_size: dict[tuple[int, int], list[int]] = {}
    for i, f in enumerate(frames):
        by_size.setdefault(f.image.shape[:2], []).append(i)
    for (h, w), idx in by_size.items():
        for i, d in zip(idx, camera_detector(detector, camera, w, h).detect([frames[i].image for i in idx])):
            out[i] = d
    return out


def _batched(frames: Iterable[Frame], detector: Detector, size: int, camera: CameraConfig | None = None) -> Iterator[tuple[Frame, object]]:
    """Detect in batches (faster on every backend), hand frames on one by one, in order.

    When the source fails part-way (a truncated video), the frames already decoded are still handed on first.
    """
    buf: list[Frame] = []
    try:
        for f in frames:
            buf.append(f)
            if len(buf) == size:
                batch, buf = buf, []
                yield from zip(batch, _detect(batch, detector, camera))
    except Exception:
        if buf:
            yield from zip(buf, _detect(buf, detector, camera))
        raise
    if buf:
        yield from zip(buf, _detect(buf, detector, camera))


def run_batch(intake: Intake, detector: Detector, footage: Path, every_s: float = 2.0, batch: int = 4, progress: bool = True, model: str | None = None) -> BatchSummary:
    """`model` names the detector's model in each incident's evidence metadata (a sample's provenance)."""
    config = intake.engine.config
    summary = BatchSummary()
    started = time.perf_counter()
    cameras, patrol, problems = discover(footage, config)
    summary.failed.extend(problems)
    try:
        _run(intake, detector, cameras, patrol, summary, every_s, batch, progress, model)
    except (StorageError, Deferred) as e:  # the ledger cannot take writes: every later file would fail the same way
        summary.stopped = str(e.cause if isinstance(e, Deferred) else e)
        touched = {f["path"] for f in summary.read} | {f["path"] for f in summary.failed}
        for p in [*(p for files in cameras.values() for p in files), *patrol]:
            if str(p) not in touched:
                summary.fail(p, f"not processed: the night stopped: {e}", "skipped")
    summary.seconds = time.perf_counter() - started
    return summary


def _run(intake: Intake, detector: Detector, cameras: dict[str, list[Path]], patrol: list[Path], summary: BatchSummary, every_s: float, batch: int, progress: bool, model: str | None) -> None:
    config = intake.engine.config

    def take(frame: Frame, dets) -> None:
        """One camera frame into the ledger; a report the ledger refuses is reported, not fatal to the night."""
        summary.saw(frame)
        frame.meta.setdefault("model", model)
        try:
            summary.add(intake.frame(frame, dets))
        except LedgerError as e:
            summary.fail(frame.source or str(frame.camera_id), f"ledger refused an incident: {e}")
        summary.frames += 1

    def readable(items: Iterable[Frame | ImageError]) -> Iterator[Frame]:
        for item in items:
            if isinstance(item, ImageError):
                summary.fail(str(item).split(":")[0], str(item))
            else:
                yield item

    for camera_id, files in cameras.items():
        camera = config.camera(camera_id)
        tz = ZoneInfo(camera.timezone)
        videos = [p for p in files if p.suffix.lower() in VIDEO_SUFFIXES]
        stills = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
        for p in files:
            if p not in videos and p not in stills:
                summary.fail(p, f"unsupported file type '{p.suffix}'", "skipped")
        starts = []
        for v in videos:
            try:
                starts.append((video_start(v, tz), v))
            except VideoError as e:
                summary.fail(v, str(e))
        for start, video in sorted(starts):
            summary.files += 1
            used = 0
            bar = tqdm(desc=f"{camera_id} {video.name}", unit="frame", disable=not progress, leave=False)
            try:
                for frame, dets in _batched(video_frames(video, start, every_s, camera_id), detector, batch, camera):
                    take(frame, dets)
                    used += 1
                    bar.update()
            except VideoError as e:
                summary.fail(video, str(e), "partial" if used else "failed", camera_id=camera_id, frames_read=e.frames_read, frames_used=used)
            else:
                summary.read.append({"path": str(video), "camera_id": camera_id, "frames": used})
            finally:
                bar.close()
        if stills:
            summary.files += len(stills)
            for frame, dets in _batched(readable(image_frames(stills, camera_id, tz)), detector, batch, camera):
                take(frame, dets)
                summary.read.append({"path": frame.source, "camera_id": camera_id, "frames": 1})

    ptz = ZoneInfo(config.patrol.timezone)
    stamped = []  # in capture order: patrol dedup looks back in time
    for photo in patrol:
        summary.files += 1
        at, gps = photo_metadata(photo, ptz)
        if at is not None:
            stamped.append((at, photo, gps))
            continue
        try:
            load_image(photo)  # say what is wrong with the file itself, if anything
            reason = f"{photo}: no capture time in EXIF"
        except ImageError as e:
            reason = str(e)
        summary.fail(photo, reason)
    for at, photo, gps in tqdm(sorted(stamped, key=lambda s: (s[0], str(s[1]))), desc="patrol photos", unit="photo", disable=not progress or not stamped, leave=False):
        try:
            frame = Frame(load_image(photo), at, None, gps, source=str(photo), meta={"model": model})
            summary.saw(frame)
            summary.add(intake.photo(frame))
            summary.photos += 1
            summary.read.append({"path": str(photo), "camera_id": None, "frames": 1})
        except (ImageError, ValueError) as e:
            summary.fail(photo, str(e))

    summary.add_posted(intake.flush())

"""The night job: every camera's footage and the day's patrol photos through the engine into the ledger.

Footage is laid out by camera: `<root>/<camera id>/` holds that camera's videos (start time in the file name)
or timestamped snapshots, and `<root>/patrol/` holds patrol photos (time and GPS from EXIF). A file that
cannot be read is reported and skipped; the rest of the night still runs.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from tqdm import tqdm

from .cases import LedgerError
from .config import CameraConfig, StreetOrderConfig
from .detect import Detector
from .detect.plan import camera_detector
from .frames import VIDEO_SUFFIXES, Frame, VideoError, image_frames, photo_metadata, video_start
from .images import IMAGE_SUFFIXES, ImageError, load_image
from .intake import Intake, IntakeResult
from .sampling import GATE_OFF, sample_video

PATROL = "patrol"


@dataclass
class BatchSummary:
    files: int = 0
    failed: list[dict] = field(default_factory=list)
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

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["seconds"] = round(self.seconds, 1)
        d["frames_per_second"] = round(self.frames / self.seconds, 2) if self.seconds else None
        return d


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
            problems.append({"path": str(entry), "error": "files go in a folder named after their camera id (or 'patrol')"})
        elif entry.name == PATROL:
            patrol = sorted(p for p in entry.rglob("*") if p.is_file() and not p.name.startswith("."))
        elif entry.name not in known:
            problems.append({"path": str(entry), "error": f"no camera '{entry.name}' in the config (known: {', '.join(sorted(known)) or 'none'})"})
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


def run_batch(intake: Intake, detector: Detector, footage: Path, every_s: float = 2.0, batch: int = 4, progress: bool = True, gate: bool = True) -> BatchSummary:
    """`gate=False` runs the detector on every sampled frame (each camera's `gate` config otherwise)."""
    config = intake.engine.config
    summary = BatchSummary()
    started = time.perf_counter()
    cameras, patrol, problems = discover(footage, config)
    summary.failed.extend(problems)

    def take(frame: Frame, dets) -> None:
        """One camera frame into the ledger; a report the ledger refuses is reported, not fatal to the night."""
        try:
            summary.add(intake.frame(frame, dets))
        except LedgerError as e:
            summary.failed.append({"path": frame.source or str(frame.camera_id), "error": f"ledger refused an incident: {e}"})
        summary.frames += 1

    def readable(items: Iterable[Frame | ImageError]) -> Iterator[Frame]:
        for item in items:
            if isinstance(item, ImageError):
                summary.failed.append({"path": str(item).split(":")[0], "error": str(item)})
            else:
                yield item

    for camera_id, files in cameras.items():
        camera = config.camera(camera_id)
        tz = ZoneInfo(camera.timezone)
        videos = [p for p in files if p.suffix.lower() in VIDEO_SUFFIXES]
        stills = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
        for p in files:
            if p not in videos and p not in stills:
                summary.failed.append({"path": str(p), "error": f"unsupported file type '{p.suffix}'"})
        starts = []
        for v in videos:
            try:
                starts.append((video_start(v, tz), v))
            except VideoError as e:
                summary.failed.append({"path": str(v), "error": str(e)})
        for start, video in sorted(starts):
            summary.files += 1
            bar = tqdm(desc=f"{camera_id} {video.name}", unit="frame", disable=not progress, leave=False)
            try:
                for frame, dets in sample_video(video, start, camera, detector, every_s, None if gate else GATE_OFF, rules=config.rules, batch=batch):
                    take(frame, dets)
                    bar.update()
            except VideoError as e:
                summary.failed.append({"path": str(video), "error": str(e), "frames_read": e.frames_read})
            finally:
                bar.close()
        if stills:
            summary.files += len(stills)
            for frame, dets in _batched(readable(image_frames(stills, camera_id, tz)), detector, batch, camera):
                take(frame, dets)

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
        summary.failed.append({"path": str(photo), "error": reason})
    for at, photo, gps in tqdm(sorted(stamped, key=lambda s: (s[0], str(s[1]))), desc="patrol photos", unit="photo", disable=not progress or not stamped, leave=False):
        try:
            summary.add(intake.photo(Frame(load_image(photo), at, None, gps, source=str(photo))))
            summary.photos += 1
        except (ImageError, ValueError) as e:
            summary.failed.append({"path": str(photo), "error": str(e)})

    summary.add_posted(intake.flush())
    summary.seconds = time.perf_counter() - started
    return summary

"""The night job: every camera's footage and the day's patrol photos through the engine into the ledger.

Footage is laid out by camera: `<root>/<camera id>/` holds that camera's videos (start time in the file name)
or timestamped snapshots, and `<root>/patrol/` holds patrol photos (time and GPS from EXIF). A file that
cannot be read is reported and skipped; the rest of the night still runs. A ledger that cannot take writes
(disk full, read-only) stops the night instead: every later file would fail the same way, and nothing already
posted is lost (re-running resumes, and posting is idempotent).

Each camera is a unit with its own engine state, run in a worker (`pipeline.night`: processes on this machine,
or a Ray cluster); the patrol photos are one unit, run after the cameras (patrol dedup is global, and cameras
first is the order a single process takes). This process is the one ledger writer, and records each unit's
progress with the cases it posts, so a killed night started again continues where it stopped.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from tqdm import tqdm

from ..config import StreetOrderConfig
from ..db.storage import StorageError
from ..detect import Detector
from ..detect.streams import available_cores, choose_parallelism
from ..source.frames import VIDEO_SUFFIXES, Frame, VideoError, photo_metadata, video_start
from ..source.images import IMAGE_SUFFIXES, ImageError, load_image
from ..live.intake import Deferred
from .units import PATROL, Counts, Job, NightSettings, Source, Unit, group_fingerprint



@dataclass
class BatchSummary:
    """What one night did. `failed` holds every file not (fully) used, each with its `path`, `error` (the reason)
    and `outcome`: skipped (never read), failed (unreadable) or partial (read up to a point). `read` lists the
    files that were used, `cases` what this run did to each case it posted to, and `windows` the span of frame
    times seen per camera: what the night report is built from. The ledger writer fills it from what the
    workers send (`pipeline.night.writer`)."""

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
    sources_done_before: int = 0  # sources an earlier run of this night finished: not decoded again
    sources_resumed: int = 0  # sources continued from a position inside them
    workers: int = 1
    parallelism: dict = field(default_factory=dict)  # each worker's detector streams and threads, and why
    seconds: float = 0.0

    def add_counts(self, c: Counts) -> None:
        self.frames += c.frames
        self.photos += c.photos
        self.violations += c.violations
        self.incidents_opened += c.incidents_opened
        self.incidents_ended += c.incidents_ended

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
        self.saw_span(frame.camera_id or PATROL, frame.at, frame.at)

    def saw_span(self, camera_id: str | None, first: datetime, last: datetime) -> None:
        w = self.windows.setdefault(camera_id or PATROL, [first, last])
        w[0], w[1] = min(w[0], first), max(w[1], last)

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["cases"] = {str(k): v for k, v in sorted(self.cases.items())}
        d["windows"] = {k: [t.isoformat() for t in w] for k, w in self.windows.items()}
        d["seconds"] = round(self.seconds, 1)
        d["frames_per_second"] = round(self.frames / self.seconds, 2) if self.seconds else None
        return d


log = logging.getLogger(__name__)
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


def plan_units(footage: Path, config: StreetOrderConfig) -> tuple[list[Unit], Unit | None, list[dict]]:
    """The night's camera units and patrol unit from the footage folder, and the files that cannot be used."""
    cameras, patrol, problems = discover(footage, config)
    units = []
    for camera_id, files in cameras.items():
        camera = config.camera(camera_id)
        tz = ZoneInfo(camera.timezone)
        videos = [p for p in files if p.suffix.lower() in VIDEO_SUFFIXES]
        stills = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
        for p in files:
            if p not in videos and p not in stills:
                problems.append({"path": str(p), "error": f"unsupported file type '{p.suffix}'", "outcome": "skipped"})
        starts = []
        for v in videos:
            try:
                starts.append((video_start(v, tz), v))
            except VideoError as e:
                problems.append({"path": str(v), "error": str(e), "outcome": "failed"})
        sources = [Source(str(v), "video", str(v.stat().st_size), start=at) for at, v in sorted(starts)]
        if stills:
            sources.append(Source(f"{footage / camera_id}#stills", "stills", group_fingerprint([(str(p), p.stat().st_size) for p in stills]), images=tuple(str(p) for p in stills)))
        if sources:
            units.append(Unit(camera_id, tuple(sources)))
    ptz = ZoneInfo(config.patrol.timezone)
    stamped = []  # in capture order: patrol dedup looks back in time
    for photo in patrol:
        at, gps = photo_metadata(photo, ptz)
        if at is not None:
            stamped.append((at, str(photo), gps))
            continue
        try:
            load_image(photo)  # say what is wrong with the file itself, if anything
            reason = f"{photo}: no capture time in EXIF"
        except ImageError as e:
            reason = str(e)
        problems.append({"path": str(photo), "error": reason, "outcome": "failed"})
    stamped.sort(key=lambda s: (s[0], s[1]))
    patrol_unit = None
    if stamped:
        fp = group_fingerprint([(p, Path(p).stat().st_size) for _, p, _ in stamped])
        patrol_unit = Unit(PATROL, (Source(str(footage / PATROL), "photos", fp, photos=tuple(stamped)),))
    return units, patrol_unit, problems


def default_workers() -> int:
    return available_cores()


def run_batch(
    store,
    config: StreetOrderConfig,
    footage: Path,
    settings: NightSettings | None = None,
    *,
    workers: int | None = None,
    ray: str | None = None,
    fresh: bool = False,
    progress: bool = True,
    detector: Detector | None = None,
) -> BatchSummary:
    """The night into `store`: cameras in parallel (`workers` processes, or Ray workers at address `ray`), then
    the patrol photos; resumes what an earlier run of the same night left (`fresh`: start over). `detector`: one
    already loaded, for a night run in this process (`workers=1`; benchmarks), instead of loading `settings.model`."""
    from ..cases import AutoVerifier
    from .progress import ProgressBook, run_key
    from .writer import LedgerWriter

    settings = settings or NightSettings()
    if settings.model_name is None:  # each frame's evidence names the model that saw it (a sample's provenance)
        from ..detect.registry import resolve_model

        settings = NightSettings(**{**settings.__dict__, "model_name": resolve_model(settings.model).name})
    summary = BatchSummary()
    started = time.perf_counter()
    footage = Path(footage)
    units, patrol, problems = plan_units(footage, config)
    summary.failed.extend(problems)
    book = ProgressBook(store.db, run_key(footage, config, settings))
    if fresh:
        book.forget()

    def jobs(units: list[Unit]) -> list[Job]:
        out = []
        for unit in units:
            summary.files += sum(s.files for s in unit.sources)
            plan = book.plan(unit)
            summary.sources_done_before += plan.done_before
            summary.failed.extend(plan.failed_before)
            if plan.finished:
                continue
            if plan.resume is not None and plan.resume.position > 0:
                summary.sources_resumed += 1
            watched = unit.id != PATROL and bool(store.camera_watch(unit.id))
            out.append(Job(Unit(unit.id, unit.sources, watched), plan.resume))
        return out

    camera_jobs = jobs(units)
    patrol_jobs = jobs([patrol]) if patrol else []
    n = max(1, workers or default_workers())
    local = 1 if n == 1 or len(camera_jobs) + len(patrol_jobs) <= 1 else min(n, max(len(camera_jobs), 1))  # processes that can be busy at once
    # the cores shared out between the workers (a Ray worker holds one CPU), then between each worker's detector
    # streams: single-threaded streams side by side where a worker has the cores for them (`detect.streams`)
    par = choose_parallelism(settings.streams, 1 if ray is not None else max(1, default_workers() // local), settings.threads, favor="throughput")
    log.info("night job: %d worker(s), each %s (%s)", n if ray is not None else local, f"{par.streams} detector stream(s) x {par.threads} thread(s)", par.why)
    settings = NightSettings(**{**settings.__dict__, "threads": par.threads, "streams": par.streams})
    summary.parallelism = {"streams": par.streams, "threads": par.threads, "why": par.why}
    if ray is not None:
        from .ray_pool import RayPool

        pool = RayPool(config, settings, ray, workers)
        summary.workers = len(pool.actors)
    elif local == 1:
        from .pool import InProcess

        pool = InProcess(config, settings, detector)
    else:
        from .pool import ProcessPool

        pool = ProcessPool(config, settings, local)
        summary.workers = local
    writer = LedgerWriter(store, AutoVerifier(store), book, summary)
    total = sum(len(j.unit.sources) for j in camera_jobs + patrol_jobs)
    bar = tqdm(total=total, desc="night", unit="source", disable=not progress or not total, leave=False)

    def handle(msg) -> None:
        writer.handle(msg)
        if getattr(msg, "status", "partial") != "partial":
            bar.update()

    try:
        pool.run(map(book.with_state, camera_jobs), handle)
        pool.run(map(book.with_state, patrol_jobs), handle)  # after every camera, as one process would: their cases come first
    except (StorageError, Deferred) as e:  # the ledger cannot take writes: every later file would fail the same way
        summary.stopped = str(e.cause if isinstance(e, Deferred) else e)
        _not_reached(summary, [*units, *([patrol] if patrol else [])], f"not processed: the night stopped: {summary.stopped}")
    finally:
        bar.close()
        pool.close()
    summary.seconds = time.perf_counter() - started
    return summary


def _not_reached(summary: BatchSummary, units: list[Unit], why: str) -> None:
    """Every file of the night not read or reported yet, as skipped: a stopped night says what it left."""
    touched = {f["path"] for f in summary.read} | {f["path"] for f in summary.failed}
    for unit in units:
        for src in unit.sources:
            paths = [src.key] if src.kind == "video" else [*src.images, *(p for _, p, _ in src.photos)]
            for p in paths:
                if p not in touched:
                    summary.fail(p, why, "skipped")

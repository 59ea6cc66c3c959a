"""Where frames come from: video files, image folders and patrol photos, each frame stamped with the time it
was *taken* (never the time it is processed), because dwell times and schedules are about the street's clock."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
from PIL import Image

from .decode import VideoError, VideoReader  # VideoError: callers import it from here
from ..domain import GeoPoint
from .images import ImageError, load_image, open_pil

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mkv", ".mov", ".ts", ".flv", ".webm", ".m4v"})
_STAMP = re.compile(r"(20\d{2})[-_]?(\d{2})[-_]?(\d{2})[T_\- ]?(\d{2})[-_:]?(\d{2})[-_:]?(\d{2})")


@dataclass
class Frame:
    """An image with the time it was taken and where it comes from."""

    image: np.ndarray
    at: datetime
    camera_id: str | None = None
    gps: GeoPoint | None = None
    source: str = ""
    meta: dict = field(default_factory=dict)


def stamp_from_name(name: str, tz: ZoneInfo) -> datetime | None:
    """A capture time in a file name, as NVRs write them: cam3_20261120_221500.mp4, 2026-11-20T22-15-00.jpg."""
    m = _STAMP.search(name)
    if not m:
        return None
    try:
        return datetime(*map(int, m.groups()), tzinfo=tz)
    except ValueError:
        return None


def video_start(path: Path, tz: ZoneInfo, start: datetime | None = None) -> datetime:
    """When a recording started: given explicitly, else from its file name, else its container's creation_time."""
    if start is not None:
        return start if start.tzinfo else start.replace(tzinfo=tz)
    from_name = stamp_from_name(path.name, tz)
    if from_name:
        return from_name
    import av

    try:
        with av.open(str(path)) as container:
            created = container.metadata.get("creation_time")
        if created:
            stamp = datetime.fromisoformat(created.replace("Z", "+00:00"))
            # ffmpeg writes creation_time in UTC; one without an offset is UTC too, not this server's zone
            return (stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)).astimezone(tz)
    except (av.error.FFmpegError, OSError) as e:
        raise VideoError(f"{path}: not a readable video ({e})") from None
    except ValueError:
        raise VideoError(f"{path}: unreadable creation_time {created!r} in its metadata; pass --start") from None
    raise VideoError(f"{path}: no start time in the file name (e.g. cam1_20261120_221500.mp4) or metadata; pass --start")


def video_frames(path: str | Path, start: datetime, every_s: float = 2.0, camera_id: str | None = None, start_s: float = 0.0, strategy: str = "auto") -> Iterator[Frame]:
    """One frame per `every_s` seconds of video time, decoding only what that needs (`decode.VideoReader` picks
    keyframes only, seeking or decode-and-drop per file).

    Timestamps are `start` + the frame's presentation time. A file that is truncated or corrupt part-way
    raises `VideoError` after the frames that did decode have been yielded. `start_s` > 0 (a resumed file)
    seeks to the keyframe before that video time and yields from the first frame at or after it, so the
    samples are the ones an uninterrupted run takes there.
    """
    path = Path(path)
    with VideoReader(path, every_s, start_s, strategy) as reader:
        i = reader.first_tick
        while (d := reader.frame(i)) is not None:
            yield Frame(d.bgr(), start + timedelta(seconds=d.t), camera_id, source=f"{path}@{d.t:.2f}s", meta={"t": d.t})
            i = reader.next_tick(i, d.t)
        reader.finish()


def _exif_time(exif: Image.Exif, tz: ZoneInfo) -> datetime | None:
    sub = exif.get_ifd(0x8769)
    raw = sub.get(0x9003) or exif.get(0x0132)  # DateTimeOriginal, else DateTime
    if not raw:
        return None
    try:
        return datetime.strptime(str(raw).strip("\x00 "), "%Y:%m:%d %H:%M:%S").replace(tzinfo=tz)
    except ValueError:
        return None


def _exif_gps(exif: Image.Exif) -> GeoPoint | None:
    gps = exif.get_ifd(0x8825)
    try:
        lat = _dms(gps[2]) * (-1 if gps.get(1) in ("S", b"S") else 1)
        lon = _dms(gps[4]) * (-1 if gps.get(3) in ("W", b"W") else 1)
        return GeoPoint(lat=lat, lon=lon)
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None


def _dms(v) -> float:
    d, m, s = (float(x) for x in v)
    return d + m / 60 + s / 3600


def photo_metadata(source: Path | bytes, tz: ZoneInfo) -> tuple[datetime | None, GeoPoint | None]:
    """Capture time and GPS from a photo's EXIF (either may be missing); `source` is a file or its bytes (an upload)."""
    try:
        with open_pil(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
            exif = im.getexif()
            return _exif_time(exif, tz), _exif_gps(exif)
    except (OSError, ValueError):
        return None, None


def image_frames(paths: list[Path], camera_id: str | None, tz: ZoneInfo, skip: int = 0) -> Iterator[Frame | ImageError]:
    """Frames from still images (a camera's snapshots), ordered by capture time: EXIF, else the file name.

    Bad files come back as `ImageError` values in place, so a caller can report them and carry on. `skip`
    leaves out (without loading) the first so many, for a resumed run.
    """
    stamped = []
    for p in paths:
        at, gps = photo_metadata(p, tz)
        at = at or stamp_from_name(p.name, tz)
        if at is None:
            stamped.append((datetime.max.replace(tzinfo=timezone.utc), p, None, ImageError(f"{p}: no capture time in EXIF or file name")))
        else:
            stamped.append((at, p, gps, None))
    for at, p, gps, err in sorted(stamped, key=lambda s: (s[0], str(s[1])))[skip:]:
        if err:
            yield err
            continue
        try:
            yield Frame(load_image(p), at, camera_id, gps, source=str(p))
        except ImageError as e:
            yield e

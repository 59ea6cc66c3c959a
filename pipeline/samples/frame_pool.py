"""A small bounded pool of recent frames and their detections: what `streetorder samples select` chooses from.

Case evidence keeps only frames that became cases; frames worth labelling are often the ones that did not
(a missed stall, a bin scored 0.3). The night job and the live endpoint offer every frame here through
`Intake`; the pool keeps a downscaled, privacy-blurred JPEG and the raw detections, at most one frame per
camera per `min_interval_s` of frame time (a static camera repeats itself), and evicts the oldest files when
it holds more than `max_frames` or `max_mb`. Serving path: no torch.

Enabled by default under `var/frames`; `STREETORDER_FRAME_POOL=DIR` moves it, `STREETORDER_FRAME_POOL=off`
turns it off.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import supervision as sv
from pydantic import BaseModel, ConfigDict, Field

from ..config.settings import PipelineSettings

log = logging.getLogger(__name__)
RESCAN_EVERY = 50  # frames kept between two listings of the pool's folder (`FramePool._evict`)


class FramePoolConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    root: Path = Field(Path("var/frames"), title="Folder", description="Where pooled frames (JPEG + JSON) are written")
    max_frames: int = Field(2000, ge=1, title="Most frames", description="Oldest frames are evicted beyond this")
    max_mb: float = Field(500.0, gt=0, title="Most megabytes", description="Oldest frames are evicted beyond this size on disk")
    max_side: int = Field(640, ge=64, title="Longest side (px)", description="Frames are downscaled to this before saving")
    min_interval_s: float = Field(30.0, ge=0, title="Per-camera interval (s)", description="At most one frame per camera in this much frame time")
    jpeg_quality: int = Field(85, ge=30, le=100, title="JPEG quality")


@dataclass(frozen=True)
class PooledFrame:
    """One pooled frame: its image file and what the serving model saw in it (boxes normalized xyxy)."""

    image: Path
    camera: str | None
    taken_at: datetime
    source: str
    detections: list[dict]

    @classmethod
    def read(cls, image: Path) -> PooledFrame:
        meta = json.loads(image.with_suffix(".json").read_text(encoding="utf-8"))
        return cls(image, meta.get("camera"), datetime.fromisoformat(meta["taken_at"]), meta.get("source", ""), meta.get("detections", []))


class FramePool:
    """Append-only folder with a size cap; safe to share between threads of one process."""

    def __init__(self, cfg: FramePoolConfig | None = None) -> None:
        self.cfg = cfg or FramePoolConfig()
        self._last: dict[str, datetime] = {}
        self._lock = threading.Lock()
        self._index: dict[Path, tuple[int, int]] | None = None  # the folder's frames: mtime_ns, bytes (`_evict`)
        self._since_scan = 0

    @classmethod
    def from_env(cls) -> FramePool | None:
        value = PipelineSettings().frame_pool or ""
        if value.lower() in ("off", "0", "false", "none"):
            return None
        return cls(FramePoolConfig(root=Path(value)) if value else None)

    def wants(self, camera: str | None, at: datetime) -> bool:
        """Whether a frame of `camera` at `at` would be kept: checked first, so a skipped frame costs nothing."""
        last = self._last.get(camera or "photo")
        return last is None or abs((at - last).total_seconds()) >= self.cfg.min_interval_s

    def offer_frame(self, image: np.ndarray, detections: sv.Detections | None, evidence, at: datetime, camera: str | None, source: str = "") -> Path | None:
        """A raw frame: shrunk to the pool's size first, then its privacy regions (`evidence` config) blurred.
        That order matters on the night job's hot path: blurring a person at 1080p cost more than the rest of a
        gated tick. Frames the pool would not keep cost nothing."""
        if not self.wants(camera, at):
            return None
        from dataclasses import replace

        from ..evidence import privacy_blur

        h, w = image.shape[:2]
        scale = min(1.0, self.cfg.max_side / max(h, w))
        if scale < 1:
            image = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
            if detections is not None and len(detections):
                detections = replace(detections, xyxy=detections.xyxy * scale)
        return self.offer(privacy_blur(image, detections, evidence) if detections is not None else image, at, camera, detections, source)

    def offer(self, image: np.ndarray, at: datetime, camera: str | None, detections: sv.Detections | None, source: str = "") -> Path | None:
        """Keep the frame unless its camera was pooled less than `min_interval_s` ago; returns the file or None.
        `image` should already be privacy-blurred. Never raises: losing a pool frame must not fail intake."""
        try:
            return self._offer(image, at, camera, detections, source)
        except Exception as e:  # a full disk or an odd frame: the pool is best effort
            log.warning("frame pool: frame not kept: %s: %s", type(e).__name__, e)
            return None

    def _offer(self, image, at, camera, detections, source) -> Path | None:
        key = camera or "photo"
        with self._lock:
            last = self._last.get(key)
            if last is not None and abs((at - last).total_seconds()) < self.cfg.min_interval_s:
                return None
            self._last[key] = at
        h, w = image.shape[:2]
        scale = min(1.0, self.cfg.max_side / max(h, w))
        small = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA) if scale < 1 else image
        ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, self.cfg.jpeg_quality])
        if not ok:
            raise ValueError("could not encode frame")
        data = buf.tobytes()
        stem = f"{at.strftime('%Y%m%dT%H%M%S')}-{key}-{hashlib.sha256(data).hexdigest()[:10]}"
        self.cfg.root.mkdir(parents=True, exist_ok=True)
        path = self.cfg.root / f"{stem}.jpg"
        dets = []
        if detections is not None and len(detections):
            names = detections.data.get("class_name", [str(c) for c in detections.class_id])
            for box, score, name in zip(detections.xyxy / [w, h, w, h], detections.confidence, names):
                dets.append({"class_name": str(name), "score": round(float(score), 4), "box": [round(float(v), 5) for v in np.clip(box, 0, 1)]})
        meta = {"camera": camera, "taken_at": at.isoformat(), "source": source, "size": [w, h], "detections": dets}
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        path.write_bytes(data)
        tmp.replace(path.with_suffix(".json"))  # the JSON last: a frame is complete once its JSON exists
        with self._lock:
            self._evict(path, len(data))
        return path

    def frames(self, since: datetime | None = None) -> list[PooledFrame]:
        """Every complete pooled frame, oldest first (optionally only those taken at or after `since`)."""
        out = []
        for meta in sorted(self.cfg.root.glob("*.json")):
            image = meta.with_suffix(".jpg")
            if not image.exists():
                continue
            try:
                f = PooledFrame.read(image)
            except (OSError, ValueError, KeyError):
                continue
            if since is None or f.taken_at >= (since if since.tzinfo or not f.taken_at.tzinfo else since.replace(tzinfo=f.taken_at.tzinfo)):
                out.append(f)
        return out

    def _evict(self, path: Path, size: int) -> None:
        """Drop the oldest frames beyond the caps. The folder's listing is read once and then kept up to date
        with this pool's own writes; it is read again every `RESCAN_EVERY` frames kept, to see other processes'
        frames (night workers share the folder), so several writers overshoot the caps by at most that many
        frames each. Listing and stat-ing the whole folder on every frame cost 13 ms a frame at 224 frames, and
        grows with the folder (2000 by default)."""
        if self._index is None or self._since_scan >= RESCAN_EVERY:
            self._index = {}  # `path` among them
            for entry in os.scandir(self.cfg.root):
                if entry.name.endswith(".jpg"):
                    try:
                        st = entry.stat()
                    except FileNotFoundError:  # evicted by another process meanwhile
                        continue
                    self._index[Path(entry.path)] = (st.st_mtime_ns, st.st_size)
            self._since_scan = 0
        else:
            self._index[path] = (time.time_ns(), size)
            self._since_scan += 1
        total = sum(b for _, b in self._index.values())
        cap = self.cfg.max_mb * 1024 * 1024
        if len(self._index) <= self.cfg.max_frames and total <= cap:
            return
        for old in sorted(self._index, key=lambda p: self._index[p][0]):
            if len(self._index) <= self.cfg.max_frames and total <= cap:
                break
            total -= self._index.pop(old)[1]
            old.unlink(missing_ok=True)
            old.with_suffix(".json").unlink(missing_ok=True)

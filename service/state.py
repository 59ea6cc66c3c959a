"""What the running service holds: the config source, the engine, the ledger, the detector, and the lock that
keeps the engine consistent.

Locking: the engine (trackers, incidents, the per-camera frame order) is not thread-safe, so everything that
touches it runs under `engine_lock`, one frame or photo at a time. Detection, the slow part, runs before the
lock is taken, on the detector reference read once at the start of the request, so requests for different
cameras overlap their inference and a model swap never waits for a frame (nor a frame for a swap). The
ledger is safe to call from any thread (one transaction per call), so case routes never take the lock.
Run one process (one uvicorn worker): the engine's state lives in memory.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from pipeline.cases import CaseStore
from pipeline.config import CameraConfig, ConfigSource, Fixture, StreetOrderConfig
from pipeline.config.load import add_fixtures
from pipeline.detect import DetectorSettings
from pipeline.detect.plan import camera_detector
from pipeline.domain import GeoPoint, Location
from pipeline.engine import Engine
from pipeline.frames import Frame
from pipeline.intake import Intake, IntakeResult
from pipeline.review import Rejection, reject

from .errors import Conflict, NotFound, Unavailable
from .model_slot import LoadedModel, ModelSlot
from .settings import ServiceSettings

log = logging.getLogger(__name__)


@dataclass
class Processed:
    """One frame or photo through the service: the model that saw it and what intake made of it."""

    model: LoadedModel
    result: IntakeResult
    width: int
    height: int


class ServiceState:
    """Built once per app by `open`; routers reach it through `deps.get_state`."""

    def __init__(self, settings: ServiceSettings, source: ConfigSource, store: CaseStore, models: ModelSlot) -> None:
        self.settings = settings
        self.source = source
        self.store = store
        self.models = models
        self.engine = Engine(source, detector=None, evidence_dir=settings.evidence_dir)
        self.intake = Intake(self.engine, store)
        self.engine_lock = threading.Lock()
        self.last_frame: dict[str, datetime] = {}

    @classmethod
    def open(cls, settings: ServiceSettings) -> ServiceState:
        """Fails fast on a bad camera config or an unreachable ledger; a model that does not load is reported by
        /ready instead, so the ledger and the review page keep working while a model is fixed or swapped in."""
        source = ConfigSource(settings.camera_config)
        store = CaseStore.open(settings.ledger_settings())
        models = ModelSlot(settings.models_dir, DetectorSettings(conf=settings.conf, imgsz=settings.imgsz), settings.threads, settings.persist_model)
        models.start(settings.model)
        if settings.model is None and settings.model_watch_s > 0:
            models.follow_current(settings.model_watch_s)  # promote/rollback move CURRENT; the service follows
        return cls(settings, source, store, models)

    def close(self) -> None:
        """Report the current state of open incidents (their last_seen) and release the database."""
        with self.engine_lock:
            try:
                self.intake.flush()
            except Exception:  # shutting down: log and go on closing
                log.exception("could not flush open incidents at shutdown")
        self.models.stop()
        self.store.close()

    # ---- config -------------------------------------------------------------------------------------

    def config(self) -> StreetOrderConfig:
        """The current config, re-read first if its file or the fixtures file changed."""
        with self.engine_lock:
            return self.source.get()

    def camera(self, camera_id: str) -> CameraConfig:
        try:
            return self.config().camera(camera_id)
        except KeyError as e:
            raise NotFound(e.args[0]) from None

    def add_fixtures(self, camera_id: str, fixtures: list[Fixture], *, check_only: bool = False) -> list[Fixture]:
        """Append fixtures to the config's fixtures file; the next frame uses them (ConfigSource sees the change)."""
        with self.engine_lock:
            added = add_fixtures(self.source.get(), camera_id, fixtures, check_only=check_only)
            self.source.get()
            return added

    def reject(self, case_id: int, *, actor: str, reason: str, fixture: bool) -> Rejection:
        """Reject a case, with fixtures for its spot if asked (under the engine lock: the config may change)."""
        if not fixture:
            return reject(self.store, case_id, actor=actor, reason=reason)
        with self.engine_lock:
            return reject(self.store, case_id, actor=actor, reason=reason, fixture_source=self.source)

    # ---- frames and photos --------------------------------------------------------------------------

    def _check_order(self, camera_id: str, at: datetime) -> None:
        last = self.last_frame.get(camera_id)
        if last is not None and at <= last:
            what = "the same time as" if at == last else "older than"
            raise Conflict(f"camera '{camera_id}': frame taken at {at.isoformat()} is {what} its last frame ({last.isoformat()}); frames of a camera must arrive in time order, each once")

    def process_frame(self, camera_id: str, at: datetime, image: np.ndarray) -> Processed:
        """Detect, then run the engine and commit the cases, so the response reports committed cases only.

        If the ledger fails after the engine has seen the frame, the frame's incident reports wait in the intake
        backlog and are posted before the next frame's: the answer is 503 and the frame must not be resent.
        """
        camera = self.camera(camera_id)
        with self.engine_lock:
            self._check_order(camera_id, at)  # fail before paying for inference
        model = self.models.require()
        # the camera's detector: the model itself, or sliced over tiles where the camera or a zone asks
        detections = camera_detector(model.detector, camera, image.shape[1], image.shape[0]).detect([image])[0]
        with self.engine_lock:
            self._check_order(camera_id, at)  # another frame of this camera may have gone first
            try:
                self.source.get().camera(camera_id)
            except KeyError as e:  # removed from the config while we detected
                raise NotFound(e.args[0]) from None
            self.last_frame[camera_id] = at  # the engine sees it now, whatever happens next
            try:
                result = self.intake.frame(Frame(image, at, camera_id, source=f"api:{camera_id}"), detections)
            except DBAPIError as e:
                raise Unavailable(
                    f"the ledger database is unavailable ({type(e.orig).__name__}); the frame was processed and its incident reports "
                    f"({len(self.intake.backlog)} queued) are posted with the next frame: do not resend this one"
                ) from None
            self._tidy(result)
        return Processed(model, result, image.shape[1], image.shape[0])

    def process_photo(self, image: np.ndarray, at: datetime, gps: GeoPoint, place: dict[str, str], source: str) -> tuple[Processed, Location]:
        """A patrol photo: its place is the nearest camera point (or a GPS point), with `place` fields overriding."""
        model = self.models.require()
        detections = model.detector.detect([image])[0]
        with self.engine_lock:
            frame = Frame(image, at, None, gps, source=source)
            location = self.engine.patrol_location(frame)
            if place:
                location = Location.model_validate({**location.model_dump(), **place})
            try:
                result = self.intake.photo(frame, location, detections)
            except DBAPIError as e:
                raise Unavailable(f"the ledger database is unavailable ({type(e.orig).__name__}); the photo's incident reports are queued and posted with the next upload") from None
            self._tidy(result)
        return Processed(model, result, image.shape[1], image.shape[0]), location

    def _tidy(self, result: IntakeResult) -> None:
        """Delete the engine's copies of evidence the ledger now holds, or a live service fills its disk. The
        engine re-reports an unchanged incident with the same hashes, which the ledger finds by hash alone;
        reports still in the backlog keep their files. Under the engine lock: the engine writes these folders."""
        for report in [*result.frame.reports, *(r for r, _ in result.retried)]:
            for ev in report.evidence:
                if self.store.evidence.exists(ev.sha256):
                    Path(ev.path).unlink(missing_ok=True)
            for folder in {Path(ev.path).parent for ev in report.evidence}:
                try:
                    folder.rmdir()  # only when empty
                except OSError:
                    pass

    # ---- health -------------------------------------------------------------------------------------

    def database_error(self) -> str | None:
        try:
            with self.store.db.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return None
        except Exception as e:
            return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"

    @property
    def config_path(self) -> Path | None:
        return self.source.path

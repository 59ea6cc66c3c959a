"""POST /photos: a patrol officer's photo; place and time from the form, else from its EXIF."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

import numpy as np
from fastapi import APIRouter, Depends, Form, UploadFile
from pipeline.domain import GeoPoint, Location
from pipeline.source.frames import photo_metadata

from ...runtime.batching import Pending
from ...runtime.errors import Unprocessable
from ...runtime.live import Processed
from ...runtime.model_slot import LoadedModel
from ...runtime.state import ServiceState
from ..admission_gate import Job
from ..deps import BaseUrl, State, require_multipart
from ..errors import QUEUED, error_responses
from ..params import PlaceText, Timestamp
from ..schemas.intake import PhotoOut, intake_fields
from ..uploads import ImageFile, ImageHold, Images

router = APIRouter(tags=["photos"])


@router.post("/photos", response_model=PhotoOut, summary="Process one patrol photo", dependencies=[Depends(require_multipart)], responses=QUEUED | error_responses(401, 413, 415, 422, 503))
async def post_photo(
    state: State,
    job: Job,
    images: Images,
    base: BaseUrl,
    image: Annotated[UploadFile, ImageFile(description="The photo; its EXIF GPS and time are used unless given below")],
    lat: Annotated[float | None, Form(ge=-90, le=90, description="WGS-84 latitude (with lon), overrides EXIF")] = None,
    lon: Annotated[float | None, Form(ge=-180, le=180, description="WGS-84 longitude (with lat)")] = None,
    taken_at: Annotated[Timestamp | None, Form(description="ISO-8601 with a zone; else EXIF, else the upload time")] = None,
    district: Annotated[PlaceText | None, Form(max_length=100, description="Overrides the district found from GPS (no control characters)")] = None,
    street: Annotated[PlaceText | None, Form(max_length=100)] = None,
    point: Annotated[PlaceText | None, Form(max_length=200, description="Inspection point (点位)")] = None,
) -> PhotoOut:
    """Patrol photos have no zones or dwell; one photo can open a case, and photos of one problem within the
    patrol radius and window are one incident."""
    if (lat is None) != (lon is None):
        raise Unprocessable("give both lat and lon, or neither (then the photo's EXIF GPS is used)")
    photo = await job.run(_begin, state, images, image, lat, lon, taken_at, {"district": district, "street": street, "point": point})  # admitted by AdmissionGate
    raw = await photo.pending.wait()  # on the event loop: no thread waits for the detector
    processed, location = await job.answer(_end, state, photo, raw)
    return PhotoOut(taken_at=photo.at, location=location, time_source=photo.time_source, gps_source=photo.gps_source, **intake_fields(processed, base))


@dataclass
class _Photo:
    """A photo between its checks and the engine: where and when, and its image at the detector."""

    image: np.ndarray
    name: str
    at: datetime
    time_source: str
    gps: GeoPoint
    gps_source: str
    place: dict[str, str]
    model: LoadedModel
    pending: Pending


def _begin(state: ServiceState, images: ImageHold, image: UploadFile, lat: float | None, lon: float | None, taken_at: datetime | None, fields: dict[str, str | None]) -> _Photo:
    """On an inference thread: decode, read EXIF, decide place and time, queue for the detector."""
    data, img = images.read(image)
    exif_at, exif_gps = photo_metadata(data, ZoneInfo(state.cameras.config().patrol.timezone))
    name = image.filename or "photo"
    if lat is not None:
        gps, gps_source = GeoPoint(lat=lat, lon=lon), "form"
    elif exif_gps is not None:
        gps, gps_source = exif_gps, "exif"
    else:
        raise Unprocessable(f"{name}: no GPS in the photo's EXIF and none given: send lat and lon form fields with it")
    if taken_at is not None:
        at, time_source = taken_at, "form"
    elif exif_at is not None:
        at, time_source = exif_at, "exif"
    else:
        at, time_source = datetime.now(UTC), "received"
    place = {k: v.strip() for k, v in fields.items() if v is not None and v.strip()}
    model, pending = state.live.begin_photo(img, at)
    return _Photo(img, name, at, time_source, gps, gps_source, place, model, pending)


def _end(state: ServiceState, photo: _Photo, raw: object) -> tuple[Processed, Location]:
    """On an inference thread: boxes, the engine, the ledger."""
    detections = photo.pending.finish(raw)
    return state.live.end_photo(photo.model, detections, photo.image, photo.at, photo.gps, photo.place, f"api:{photo.name}")

"""POST /photos: a patrol officer's photo; place and time from the form, else from its EXIF."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, UploadFile
from pipeline.domain import GeoPoint
from pipeline.source.frames import photo_metadata

from ...runtime.errors import Unprocessable
from ..deps import BaseUrl, State, require_multipart
from ..errors import QUEUED, error_responses
from ..params import PlaceText, Timestamp
from ..schemas.intake import PhotoOut, intake_fields
from ..uploads import ImageFile, Images

router = APIRouter(tags=["photos"])


@router.post("/photos", response_model=PhotoOut, summary="Process one patrol photo", dependencies=[Depends(require_multipart)], responses=QUEUED | error_responses(401, 413, 415, 422, 503))
def post_photo(
    state: State,
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
    data, img = images.read(image)
    exif_at, exif_gps = photo_metadata(data, ZoneInfo(state.cameras.config().patrol.timezone))
    if lat is not None:
        gps, gps_source = GeoPoint(lat=lat, lon=lon), "form"
    elif exif_gps is not None:
        gps, gps_source = exif_gps, "exif"
    else:
        raise Unprocessable(f"{image.filename or 'photo'}: no GPS in the photo's EXIF and none given: send lat and lon form fields with it")
    if taken_at is not None:
        at, time_source = taken_at, "form"
    elif exif_at is not None:
        at, time_source = exif_at, "exif"
    else:
        at, time_source = datetime.now(UTC), "received"
    place = {k: v.strip() for k, v in (("district", district), ("street", street), ("point", point)) if v is not None and v.strip()}
    processed, location = state.live.process_photo(img, at, gps, place, source=f"api:{image.filename or 'photo'}")
    return PhotoOut(taken_at=at, location=location, time_source=time_source, gps_source=gps_source, **intake_fields(processed, base))

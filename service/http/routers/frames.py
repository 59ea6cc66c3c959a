"""POST /frames: one timestamped frame of a fixed camera through detector, engine and ledger."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, UploadFile
from ..deps import BaseUrl, State, require_multipart
from ..errors import QUEUED, error_responses
from ..params import Timestamp
from ..schemas.intake import FrameOut, intake_fields
from ..uploads import ImageFile, Images

router = APIRouter(tags=["frames"])


@router.post(
    "/frames",
    response_model=FrameOut,
    summary="Process one camera frame",
    dependencies=[Depends(require_multipart)],
    responses=QUEUED | error_responses(401, 404, 409, 413, 415, 422, 503),
)
def post_frame(
    state: State,
    images: Images,
    base: BaseUrl,
    camera_id: Annotated[str, Form(min_length=1, max_length=100, description="A camera of the config")],
    taken_at: Annotated[Timestamp, Form(description="When the frame was taken, ISO-8601 with a zone, e.g. 2026-11-21T09:00:00+08:00; not ahead of the service's clock by more than the allowed skew")],
    image: Annotated[UploadFile, ImageFile(description="The frame (JPEG, PNG, ...)")],
) -> FrameOut:
    """Processed synchronously: the cases are committed before a 200, so an accepted frame is never lost; with
    the ledger down the answer is 202 and the reports wait in the service's journal. Frames of one camera must
    come in time order, each once (409 otherwise, also after a restart): the tracker measures dwell on frame
    time. A frame from the future (camera clock ahead) is 422 and never stored."""
    _, img = images.read(image)
    processed = state.live.process_frame(camera_id, taken_at, img)
    return FrameOut(camera_id=camera_id, taken_at=taken_at, **intake_fields(processed, base))

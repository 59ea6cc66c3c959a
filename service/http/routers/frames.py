"""POST /frames: one timestamped frame of a fixed camera through detector, engine and ledger."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Form, UploadFile

from ...runtime.live import FrameJob
from ...runtime.state import ServiceState
from ..admission_gate import Job
from ..deps import BaseUrl, State, require_multipart
from ..errors import QUEUED, error_responses
from ..params import Timestamp
from ..schemas.intake import FrameOut, intake_fields
from ..uploads import ImageFile, ImageHold, Images

router = APIRouter(tags=["frames"])


@router.post(
    "/frames",
    response_model=FrameOut,
    summary="Process one camera frame",
    dependencies=[Depends(require_multipart)],
    responses=QUEUED | error_responses(401, 404, 409, 413, 415, 422, 503),
)
async def post_frame(
    state: State,
    job: Job,
    images: Images,
    base: BaseUrl,
    camera_id: Annotated[str, Form(min_length=1, max_length=100, description="A camera of the config")],
    taken_at: Annotated[Timestamp, Form(description="When the frame was taken, ISO-8601 with a zone, e.g. 2026-11-21T09:00:00+08:00; not ahead of the service's clock by more than the allowed skew")],
    image: Annotated[UploadFile, ImageFile(description="The frame (JPEG, PNG, ...)")],
) -> FrameOut:
    """Processed synchronously: the cases are committed before a 200, so an accepted frame is never lost; with
    the ledger down the answer is 202 and the reports wait in the service's journal. Frames of one camera must
    come in time order, each once (409 otherwise, also after a restart): the tracker measures dwell on frame
    time. A frame from the future (camera clock ahead) is 422 and never stored. A 503 (the detector is busier
    than the latency budget allows; Retry-After says when to come back) took nothing: resend the same frame."""
    work = await job.run(_begin, state, images, image, camera_id, taken_at)  # admitted by AdmissionGate, or it was a 503
    try:
        raw = await work.pending.wait()  # on the event loop: no thread waits for the detector
    except BaseException:
        work.abandon()
        raise
    processed = await job.answer(state.live.end_frame, work, raw)
    return FrameOut(camera_id=camera_id, taken_at=taken_at, **intake_fields(processed, base))


def _begin(state: ServiceState, images: ImageHold, image: UploadFile, camera_id: str, taken_at: datetime) -> FrameJob:
    _, img = images.read(image)
    return state.live.begin_frame(camera_id, taken_at, img)

"""POST /detect: the detector alone, on one uploaded image; no engine, no cases."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, Query, UploadFile

from ...runtime.batching import Pending
from ...runtime.errors import Unprocessable
from ...runtime.model_slot import LoadedModel
from ...runtime.state import ServiceState
from ..admission_gate import Job
from ..deps import State, require_multipart
from ..errors import error_responses
from ..schemas.detect import DetectionOut, DetectOut
from ..uploads import ImageFile, ImageHold, Images

router = APIRouter(tags=["detect"])

# An upload this small is decoded and prepared on the event loop when it is the only inference request in flight
# (`Admitted.alone`): a 640 px JPEG of 60-80 KB takes 2.7 ms there, and the hop to a thread and back 0.2-0.7 ms
# more at c=1 (docs/benchmarks.md), while nothing waits behind it. Larger ones, and every one under load, go to
# the inference pool, so the loop is never held for more than a few milliseconds.
DECODE_HERE_BYTES = 256 * 1024
DECODE_HERE_PIXELS = 1_000_000


@router.post("/detect", response_model=DetectOut, summary="Detect objects in one image", dependencies=[Depends(require_multipart)], responses=error_responses(401, 413, 415, 422, 503))
async def detect(
    state: State,
    job: Job,
    images: Images,
    image: Annotated[UploadFile, ImageFile(description="JPEG, PNG, WebP, BMP or TIFF")],
    conf: Annotated[float | None, Query(ge=0, le=1, description="Minimum score; not below the service's floor (settings.conf)")] = None,
    classes: Annotated[list[str] | None, Query(description="Class names to keep; repeat the parameter or separate with commas")] = None,
) -> DetectOut:
    model = state.detector.models.require()
    floor = state.settings.conf
    if conf is not None and conf < floor:
        raise Unprocessable(f"conf {conf} is below the service's detector floor {floor}: detections under it are never computed (start the service with a lower --conf)")
    wanted = [c.strip() for item in classes or [] for c in item.split(",") if c.strip()]
    unknown = sorted(set(wanted) - set(model.detector.names))
    if unknown:
        raise Unprocessable(f"unknown class(es) {unknown}; model {model.name} knows: {', '.join(model.detector.names)}")
    here = job.alone and images.decodes_quickly(image, DECODE_HERE_BYTES, DECODE_HERE_PIXELS)
    img, pending = await job.run(_submit, state, images, image, model, here=here)  # admitted by AdmissionGate, or it was a 503
    raw = await pending.wait()  # on the event loop: no thread waits for the detector
    return await job.answer(_answer, model, img, pending, raw, conf, wanted, here=pending.finished(raw))  # made boxes: only JSON is left


def _submit(state: ServiceState, images: ImageHold, image: UploadFile, model: LoadedModel) -> tuple[np.ndarray, Pending]:
    """On an inference thread: decode, prepare, queue for the detector (one call, so the batcher knows the
    image is on its way while it decodes)."""
    _, img = images.read(image)
    return img, state.detector.batcher.submit(model.detector, img, model.name)


def _answer(model: LoadedModel, img: np.ndarray, pending: Pending, raw: object, conf: float | None, wanted: list[str]) -> DetectOut:
    """On an inference thread: the raw output into boxes, filtered."""
    found = pending.finish(raw)
    keep = np.ones(len(found), dtype=bool)
    if conf is not None:
        keep &= found.confidence >= conf
    if wanted:
        keep &= np.isin(found.data["class_name"].astype(str), wanted)
    return DetectOut(model=model.name, width=img.shape[1], height=img.shape[0], detections=DetectionOut.many(found[keep]))

"""POST /detect: the detector alone, on one uploaded image; no engine, no cases."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, File, Query, UploadFile

from ..deps import State, require_multipart
from ..errors import Unprocessable, error_responses
from ..schemas import DetectionOut, DetectOut
from ..uploads import Images

router = APIRouter(tags=["detect"])


@router.post("/detect", response_model=DetectOut, summary="Detect objects in one image", dependencies=[Depends(require_multipart)], responses=error_responses(401, 413, 415, 422, 503))
def detect(
    state: State,
    images: Images,
    image: Annotated[UploadFile, File(description="JPEG, PNG, WebP, BMP or TIFF")],
    conf: Annotated[float | None, Query(ge=0, le=1, description="Minimum score; not below the service's floor (settings.conf)")] = None,
    classes: Annotated[list[str] | None, Query(description="Class names to keep; repeat the parameter or separate with commas")] = None,
) -> DetectOut:
    model = state.models.require()
    floor = state.settings.conf
    if conf is not None and conf < floor:
        raise Unprocessable(f"conf {conf} is below the service's detector floor {floor}: detections under it are never computed (start the service with a lower --conf)")
    wanted = [c.strip() for item in classes or [] for c in item.split(",") if c.strip()]
    unknown = sorted(set(wanted) - set(model.detector.names))
    if unknown:
        raise Unprocessable(f"unknown class(es) {unknown}; model {model.name} knows: {', '.join(model.detector.names)}")
    _, img = images.read(image)
    found = state.batcher.detect(model.detector, img, model.name)
    keep = np.ones(len(found), dtype=bool)
    if conf is not None:
        keep &= found.confidence >= conf
    if wanted:
        keep &= np.isin(found.data["class_name"].astype(str), wanted)
    return DetectOut(model=model.name, width=img.shape[1], height=img.shape[0], detections=DetectionOut.many(found[keep]))

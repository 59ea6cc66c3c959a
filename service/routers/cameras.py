"""The camera config as the engine uses it, and fixtures added at run time (no restart)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path

from pipeline.config import Fixture

from ..deps import State
from ..errors import error_responses
from ..schemas import CameraList, CameraOut, FixtureIn, ZoneOut

router = APIRouter(prefix="/cameras", tags=["cameras"])


@router.get("", response_model=CameraList, summary="Configured cameras, and the last reload error", responses=error_responses(401))
def list_cameras(state: State) -> CameraList:
    cfg = state.config()
    return CameraList(
        config_path=str(state.config_path) if state.config_path else None,
        config_version=state.source.version,
        config_error=state.source.error,
        fixtures_file=str(cfg.fixtures_file) if cfg.fixtures_file else None,
        cameras=[
            CameraOut(
                id=c.id, name=c.name, location=c.location, owner=c.owner, resolution=c.resolution, timezone=c.timezone,
                zones=[ZoneOut(id=z.id, kind=z.kind, point=z.point, scheduled=bool(z.schedule and z.schedule.allowed)) for z in c.zones],
                fixtures=list(c.fixtures), last_frame_at=state.last_frame.get(c.id),
            )
            for c in cfg.cameras
        ],
    )


@router.post("/{camera_id}/fixtures", response_model=Fixture, status_code=201, summary="Add a fixture to a camera", responses=error_responses(401, 404, 409, 422))
def add_fixture(state: State, camera_id: Annotated[str, Path(max_length=100)], body: FixtureIn) -> Fixture:
    """Written to the config's `fixtures_file` (the hand-written config is never rewritten); the engine picks
    it up on the camera's next frame. 409 if the config has no fixtures_file."""
    fixture = Fixture(
        id=body.id or f"api-{uuid.uuid4().hex[:8]}", box=body.box, coords=body.coords,
        classes=tuple(body.classes) if body.classes else None, min_iou=body.min_iou, reason=body.reason,
    )
    return state.add_fixtures(camera_id, [fixture])[0]

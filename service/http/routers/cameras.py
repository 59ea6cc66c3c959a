"""The camera config as the engine uses it, and its fixtures: listed per camera, added, edited and removed at
run time (no restart). Only the machine-written fixtures file changes; hand-written fixtures are read-only here."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Request

from pipeline.config import Fixture
from pipeline.config.load import read_fixtures

from ..deps import State
from ..errors import error_responses
from ..paging import Paging, page_fields, window
from ..schemas.cameras import CameraList, CameraOut, FixtureEdit, FixtureIn, FixtureList, FixtureOut, ZoneOut

router = APIRouter(prefix="/cameras", tags=["cameras"])

CameraId = Annotated[str, Path(max_length=100, description="A camera of the config")]
FixtureId = Annotated[str, Path(max_length=100, description="The fixture's id (stable: edits keep it)")]


@router.get("", response_model=CameraList, summary="Configured cameras, and the last reload error", responses=error_responses(401))
def list_cameras(state: State, request: Request, page: Paging) -> CameraList:
    cameras = state.cameras
    cfg = cameras.config()
    return CameraList(
        config_path=str(cameras.path) if cameras.path else None,
        config_version=cameras.source.version,
        config_error=cameras.source.error,
        fixtures_file=str(cfg.fixtures_file) if cfg.fixtures_file else None,
        cameras=[
            CameraOut(
                id=c.id, name=c.name, location=c.location, owner=c.owner, resolution=c.resolution, timezone=c.timezone,
                zones=[ZoneOut(id=z.id, kind=z.kind, point=z.point, scheduled=bool(z.schedule and z.schedule.allowed)) for z in c.zones],
                fixtures=list(c.fixtures), last_frame_at=state.live.last_frame.get(c.id),
            )
            for c in window(list(cfg.cameras), page)
        ],
        **page_fields(request, page, len(cfg.cameras)),
    )


@router.get("/{camera_id}/fixtures", response_model=FixtureList, summary="A camera's fixtures, hand-written and added", responses=error_responses(401, 404, 422))
def list_fixtures(state: State, request: Request, page: Paging, camera_id: CameraId) -> FixtureList:
    """In the order the engine applies them: the config's own first, then the fixtures file's."""
    camera = state.cameras.camera(camera_id)
    cfg = state.cameras.config()
    in_file = {f.id for f in read_fixtures(cfg.fixtures_file).get(camera_id, [])} if cfg.fixtures_file else set()
    fixtures = [FixtureOut(**f.model_dump(), editable=f.id in in_file) for f in camera.fixtures]
    return FixtureList(camera_id=camera_id, fixtures=window(fixtures, page), **page_fields(request, page, len(fixtures)))


@router.post("/{camera_id}/fixtures", response_model=Fixture, status_code=201, summary="Add a fixture to a camera", responses=error_responses(401, 404, 409, 422))
def add_fixture(state: State, camera_id: CameraId, body: FixtureIn) -> Fixture:
    """Written to the config's `fixtures_file` (the hand-written config is never rewritten); the engine picks
    it up on the camera's next frame. 409 if the config has no fixtures_file, the id is taken, or the camera
    already has a fixture with the same box and classes (a repeated POST adds nothing)."""
    return state.cameras.add_fixtures(camera_id, [body.fixture(body.id or f"api-{uuid.uuid4().hex[:8]}")])[0]


@router.put("/{camera_id}/fixtures/{fixture_id}", response_model=Fixture, summary="Edit a fixture (its id stays)", responses=error_responses(401, 404, 409, 422))
def edit_fixture(state: State, camera_id: CameraId, fixture_id: FixtureId, body: FixtureEdit) -> Fixture:
    """Replaces the fixture's box, classes, IoU and reason. 409 for a hand-written fixture (edit the config)."""
    return state.cameras.update_fixture(camera_id, body.fixture(fixture_id))


@router.delete("/{camera_id}/fixtures/{fixture_id}", response_model=Fixture, summary="Remove a fixture", responses=error_responses(401, 404, 409, 422))
def remove_fixture(state: State, camera_id: CameraId, fixture_id: FixtureId) -> Fixture:
    """The camera raises the spot again from its next frame. Answers with the removed fixture, so it can be put
    back with POST. 409 for a hand-written fixture."""
    return state.cameras.remove_fixture(camera_id, fixture_id)

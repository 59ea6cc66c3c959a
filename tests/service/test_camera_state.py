"""The service takes each camera's engine state up from the ledger before the camera's first frame (on start,
and when the ledger comes back after a start during an outage), never over the state of a camera that has
sent frames since."""

from __future__ import annotations

from datetime import timedelta

from pipeline.live.camera_state import CameraCheckpoint

from .conftest import T0, post_frame


def test_a_restarted_service_goes_on_with_the_dwell_and_a_camera_that_went_on_keeps_its_state(make_client, street_jpeg):
    first = make_client()
    assert post_frame(first, street_jpeg, T0).json()["incidents"] == []  # the motorbike's dwell starts (2 s needed)
    mid_dwell = first.app.state.service.live.states.load("cam-1")
    assert mid_dwell.frame_at == T0

    second = make_client()  # a restart: the same ledger and journal
    live = second.app.state.service.live
    opened = post_frame(second, street_jpeg, T0 + timedelta(seconds=2)).json()["incidents"]
    assert [(i["change"], i["incident_id"]) for i in opened] == [("opened", "cam-1-non_motor_parking-np-20261121T090000")]

    later = CameraCheckpoint.of("cam-1", T0 + timedelta(seconds=60), mid_dwell.blob)  # newer, from another process
    with live.store.db.transaction() as s:
        assert live.states.save(s, later)
    live.read_ledger_states()  # as when the ledger comes back: cam-1 has sent a frame since the start
    assert len(live.engine.open_incidents()) == 1

    third = make_client()  # cam-1 has sent it nothing: it takes the ledger's state up
    engine = third.app.state.service.live.engine
    assert "cam-1" in engine.cameras and engine.open_incidents() == []

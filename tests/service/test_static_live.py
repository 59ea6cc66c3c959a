"""Static objects through the live endpoint: frames POSTed by a camera in time order, a stall set up in a
no_vending zone with people coming by, the real detector beside the static scene."""

from __future__ import annotations

from datetime import datetime, timedelta

import cv2
import pytest
import yaml

from tests.conftest import STREETS_IN
from tests.scene.clips import START, STALL_BOX, Clip, Thing, crop

from .conftest import CAMERA_CONFIG, post_frame

pytestmark = pytest.mark.slow

VENDOR = crop(STREETS_IN / "images" / "IMG20240615121558_jpg.jpg", (351, 132, 427, 409))  # a real person: the detector sees one


def test_a_stall_set_up_in_front_of_a_live_camera_opens_one_vending_case(make_client, camera_config):
    config = dict(CAMERA_CONFIG)
    config["cameras"] = [
        {
            "id": "cam-v", "location": {"district": "上城区", "point": "东坡路口", "gps": {"lat": 30.25, "lon": 120.16}}, "owner": "王强", "resolution": [640, 480],
            "zones": [{"id": "market", "kind": "no_vending", "polygon": [[380, 0], [640, 0], [640, 200], [380, 200]]}],
        }
    ]
    config["rules"] = {"street_vending": {"min_dwell_s": 60}}
    camera_config.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    client = make_client()
    clip = Clip([Thing(crop(), STALL_BOX, 20.0), Thing(VENDOR, (396, 60, 440, 180), 40.0, 120.0)])
    opened, statics = [], 0
    for t in range(0, 241, 4):
        jpeg = cv2.imencode(".jpg", clip.image(float(t)), [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()
        r = post_frame(client, jpeg, START + timedelta(seconds=t), camera_id="cam-v")
        assert r.status_code == 200, r.text
        body = r.json()
        statics = max(statics, sum(d["class_name"] == "static_object" for d in body["detections"]))
        opened += [i for i in body["incidents"] if i["change"] == "opened"]
    [incident] = opened
    assert incident["type"] == "street_vending" and incident["zone_id"] == "market"
    assert 16 <= (datetime.fromisoformat(incident["first_seen"]) - START).total_seconds() <= 28  # set up at 20 s
    assert statics >= 1  # the stall (and, while she stands there, the vendor: the detector explains her)
    case = client.get(f"/cases/{incident['case']['case_id']}").json()
    assert case["type"] == "street_vending"
    page = client.get("/review").text
    assert "static object: appeared" in page

"""POST /photos: patrol photos, placed by EXIF or form GPS; no GPS anywhere is refused with a clear reason."""

from __future__ import annotations

import io

from PIL import Image

from .conftest import STREET


def photo_with_exif(lat_dms=(30.0, 17.0, 36.96), lon_dms=(120.0, 9.0, 41.04), taken="2026:11:21 10:00:00") -> bytes:
    """The street photo with EXIF GPS (30.2936 N, 120.1614 E: at camera cam-1's point) and capture time."""
    exif = Image.Exif()
    exif.get_ifd(0x8825).update({1: "N", 2: lat_dms, 3: "E", 4: lon_dms})
    exif.get_ifd(0x8769)[0x9003] = taken
    buf = io.BytesIO()
    with Image.open(STREET) as im:
        im.save(buf, "JPEG", exif=exif)
    return buf.getvalue()


def test_exif_gps_and_time_place_the_photo_at_the_nearby_camera_point(client):
    r = client.post("/photos", files={"image": ("patrol.jpg", photo_with_exif(), "image/jpeg")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["gps_source"], body["time_source"]) == ("exif", "exif")
    assert body["taken_at"] == "2026-11-21T10:00:00+08:00"
    assert body["location"]["point"] == "学校东门"  # within the patrol radius of cam-1
    [incident] = body["incidents"]
    assert incident["source"] == "patrol" and incident["type"] == "non_motor_parking" and incident["count"] >= 3
    assert incident["case"]["created"]
    assert client.get(f"/cases/{incident['case']['case_id']}").json()["source"] == "patrol"


def test_form_fields_override_exif_and_a_second_photo_of_the_spot_is_the_same_incident(client, street_jpeg):
    form = {"lat": "31.2304", "lon": "121.4737", "taken_at": "2026-11-21T11:00:00+08:00", "district": "黄浦区", "point": "南京东路口"}
    first = client.post("/photos", data=form, files={"image": ("a.jpg", photo_with_exif(), "image/jpeg")}).json()
    assert (first["gps_source"], first["time_source"]) == ("form", "form")
    assert first["location"]["district"] == "黄浦区" and first["location"]["point"] == "南京东路口"
    assert first["location"]["gps"] == {"lat": 31.2304, "lon": 121.4737}
    second = client.post("/photos", data=form | {"taken_at": "2026-11-21T11:20:00+08:00"}, files={"image": ("b.jpg", street_jpeg, "image/jpeg")}).json()
    assert second["incidents"][0]["incident_id"] == first["incidents"][0]["incident_id"]
    assert second["incidents"][0]["case"]["case_id"] == first["incidents"][0]["case"]["case_id"]


def test_a_photo_with_no_gps_anywhere_is_422_saying_what_to_send(client, street_jpeg):
    r = client.post("/photos", files={"image": ("nogps.jpg", street_jpeg, "image/jpeg")})
    assert r.status_code == 422
    assert r.json()["detail"] == "nogps.jpg: no GPS in the photo's EXIF and none given: send lat and lon form fields with it"


def test_half_a_position_is_422(client, street_jpeg):
    r = client.post("/photos", data={"lat": "30.1"}, files={"image": ("p.jpg", street_jpeg, "image/jpeg")})
    assert r.status_code == 422 and "both lat and lon" in r.json()["detail"]
    r = client.post("/photos", data={"lat": "95", "lon": "120"}, files={"image": ("p.jpg", street_jpeg, "image/jpeg")})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "lat"]


def test_without_exif_time_the_upload_time_is_used(client, street_jpeg):
    r = client.post("/photos", data={"lat": "30.5", "lon": "120.5"}, files={"image": ("p.jpg", street_jpeg, "image/jpeg")})
    assert r.status_code == 200
    body = r.json()
    assert body["time_source"] == "received"
    assert body["location"]["district"] == "上城区"  # the patrol default: no camera point near

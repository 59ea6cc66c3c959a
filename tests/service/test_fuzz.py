"""A schemathesis run over the service's OpenAPI schema: every operation, bounded examples, all checks.

Zero server errors and zero schema violations (status codes, content types, bodies and headers as documented),
and valid data is accepted: what the server refuses with 422 the schema refuses too (image parts are never
empty, `conf` starts at the service's floor, `lat` and `lon` come together, text fields carry their `pattern`).
Four rules no JSON schema can state are applied to the positive cases here, and only there: that an image part
decodes as an image, that a box's corners are ordered (x2 > x1, y2 > y1), that a capture time lies between the
service's earliest and its clock, and that the overview's period is a month or a week, not both (each route's
description says so). Negative cases go out as schemathesis made them.
Deterministic (derandomized) so a failure reproduces; bounded so the whole run stays well under a minute.
"""

from __future__ import annotations

import io
import math
import os
from datetime import datetime
import shutil
import time
import warnings
from collections import Counter

import pytest
import schemathesis
import yaml
from fastapi.testclient import TestClient
from openapi_spec_validator import validate
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from PIL import Image
from schemathesis import GenerationMode
from schemathesis.transport.serialization import Binary

from pipeline.cases.config import LedgerConfig
from service.http.app import create_app
from service.settings import ServiceSettings

from .conftest import CAMERA_CONFIG

pytestmark = pytest.mark.slow

# A longer run for a report: FUZZ_MAX_EXAMPLES=100 FUZZ_BUDGET_S=1200 pytest tests/service/test_fuzz.py -s
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "12"))
BUDGET_S = float(os.environ.get("FUZZ_BUDGET_S", "40"))  # on a slow machine the run stops here (with a warning naming what it skipped), whatever is left
KEY = "fuzz-key-0123456789"


@pytest.fixture(scope="module")
def fuzzed_app(tmp_path_factory, models_root, ledger_template):
    """One app for the whole run, on its own ledger and config; the fuzzer sends the key (and checks that a
    missing or wrong one is refused)."""
    root = tmp_path_factory.mktemp("fuzz")
    (root / "cameras.yaml").write_text(yaml.safe_dump(CAMERA_CONFIG, allow_unicode=True, sort_keys=False), encoding="utf-8")
    shutil.copy(ledger_template, root / "ledger.db")
    ledger = LedgerConfig(database_url=f"sqlite:///{root / 'ledger.db'}", evidence_dir=root / "evidence", auto_upgrade=False)
    settings_ = ServiceSettings(
        camera_config=root / "cameras.yaml", ledger=ledger, models_dir=models_root, evidence_dir=root / "engine-evidence",
        journal=root / "journal.jsonl", threads=1, imgsz=320, max_upload_bytes=256 * 1024, api_key=KEY,
        auth_failures_per_address=10**9, auth_failures_global=10**9,  # the fuzzer sends wrong keys by the hundred; the limits have their own tests
    )
    return create_app(settings_)


def test_the_schema_is_valid_openapi_3_1(fuzzed_app):
    spec = fuzzed_app.openapi()
    assert spec["openapi"].startswith("3.1")
    validate(spec)  # raises with the path of the first invalid part (e.g. a tuple's prefixItems)
    box = spec["components"]["schemas"]["Fixture"]["properties"]["box"]
    assert box["type"] == "array" and box["minItems"] == box["maxItems"] == 4 and len(box["prefixItems"]) == 4


def test_a_wrong_method_is_405_with_every_allowed_method(fuzzed_app):
    r = TestClient(fuzzed_app).request("OPTIONS", "/models/current", headers={"X-API-Key": KEY})
    assert r.status_code == 405 and set(r.headers["allow"].split(", ")) >= {"GET", "PUT"}  # two routes, one path


def _mutates_key(case) -> bool:
    """Whether schemathesis made this case invalid through the X-API-Key header (removed or mangled)."""
    data = case.meta.phase.data if case.meta is not None else None
    names = {getattr(data, "parameter", None), *(m.parameter for m in getattr(data, "mutations", ()))}
    return "X-API-Key" in names


def _photo() -> bytes:
    """A readable JPEG with EXIF GPS and time, as a patrol phone sends (so /photos needs no lat and lon)."""
    exif = Image.Exif()
    exif.get_ifd(0x8825).update({1: "N", 2: (30.0, 17.0, 36.96), 3: "E", 4: (120.0, 9.0, 41.04)})
    exif[0x0132] = "2026:11:21 10:00:00"
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (90, 120, 150)).save(buf, format="JPEG", exif=exif)
    return buf.getvalue()


PHOTO = _photo()
IMAGE_PARTS = ("image", "photo")


def _ordered(box):
    """The corners of a generated box put in order, and apart."""
    if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box)):
        return box
    x1, x2 = sorted((box[0], box[2]))
    y1, y2 = sorted((box[1], box[3]))
    return [x1 if x1 < x2 else math.nextafter(x1, -math.inf), y1 if y1 < y2 else math.nextafter(y1, -math.inf), x2, y2]


def _order_boxes(value) -> None:
    """Every `box` inside `value` put in order, in place."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "box":
                value[k] = _ordered(v)
            else:
                _order_boxes(v)
    elif isinstance(value, list):
        for v in value:
            _order_boxes(v)


def _in_window(value):
    """A generated capture time moved into the years the service accepts (2001-2019: after its earliest,
    2000-01-01, and not ahead of its clock), same month, day, time and zone, when it is outside them."""
    try:
        at = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return value
    if at.tzinfo is None or 2001 <= at.year < 2020:
        return value
    return at.replace(year=2001 + at.year % 19, day=min(at.day, 28)).isoformat()


def _beyond_the_schema(case) -> None:
    """The rules of a valid request that JSON Schema cannot state (see the module's docstring). The body is
    changed in place: assigning `case.body` makes schemathesis judge the case again, and it reads a `Binary`
    (a str subclass holding bytes) as an empty string, below the image part's minLength."""
    if isinstance(case.body, dict):
        for part in IMAGE_PARTS:
            if part in case.body:
                case.body[part] = Binary(PHOTO)
        if "taken_at" in case.body:
            case.body["taken_at"] = _in_window(case.body["taken_at"])
        _order_boxes(case.body)
    if isinstance(case.query, dict) and "month" in case.query and "week" in case.query:
        del case.query["week"]  # the overview's period is a month or a week, not both (query parameters have no oneOf)


def test_the_schema_says_what_the_server_refuses(fuzzed_app):
    """Each of these was a 422 for a request the schema allowed (issue 22)."""
    spec = fuzzed_app.openapi()
    schemas = spec["components"]["schemas"]
    for body in ("Body_detect_detect_post", "Body_post_frame_frames_post", "Body_post_photo_photos_post"):
        assert schemas[body]["properties"]["image"]["minLength"] == 1, body  # no empty files
    conf = next(p for p in spec["paths"]["/detect"]["post"]["parameters"] if p["name"] == "conf")["schema"]["anyOf"][0]
    assert conf["minimum"] == fuzzed_app.state.service.settings.conf == 0.25
    assert schemas["Body_post_photo_photos_post"]["dependentRequired"] == {"lat": ["lon"], "lon": ["lat"]}
    assert schemas["FixtureIn"]["properties"]["reason"]["pattern"].startswith("^[^\\x00-\\x08")


def test_every_operation_answers_as_documented(fuzzed_app):
    """Positive and negative examples for every operation; every failure of every check is collected."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzzed_app)
    failures: dict[str, str] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    started, skipped, sent = time.monotonic(), [], Counter()
    for operation in operations:
        if time.monotonic() - started > BUDGET_S:
            skipped.append(f"{operation.method.upper()} {operation.path}")
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), database=None, phases=[Phase.generate])
            def check(case) -> None:
                # the key, unless this negative case is about the key itself (then it must be refused)
                headers = {} if _mutates_key(case) else {"X-API-Key": KEY}
                if case.meta is not None and case.meta.generation.mode.is_positive:  # as the case says, not the strategy
                    _beyond_the_schema(case)
                response = case.call_and_validate(headers=headers)
                sent[response.status_code // 100 * 100] += 1

            try:
                check()
            except Unsatisfiable:
                assert mode == GenerationMode.NEGATIVE, operation.path  # nothing to negate: no parameters, no body
            except (Exception, BaseExceptionGroup) as e:  # a FailureGroup with the checks that failed, the request and the response
                failures[f"{operation.method.upper()} {operation.path} ({mode.value})"] = str(e)[:3000]
    print(f"\nschemathesis: {sum(sent.values())} cases, answers by class {dict(sorted(sent.items()))}, {len(failures)} operations with failures")
    assert not failures, "\n\n".join(f"{where}:\n{why}" for where, why in failures.items())
    if skipped:
        warnings.warn(f"fuzz time budget of {BUDGET_S:g} s spent; not fuzzed: {', '.join(skipped)}", stacklevel=1)

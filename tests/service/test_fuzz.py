"""A schemathesis run over the service's OpenAPI schema: every operation, bounded examples, all checks.

Zero server errors and zero schema violations (status codes, content types, bodies and headers as documented).
Deterministic (derandomized) so a failure reproduces; bounded so the whole run stays well under a minute.
"""

from __future__ import annotations

import shutil
import time
import warnings

import pytest
import schemathesis
import yaml
from fastapi.testclient import TestClient
from openapi_spec_validator import validate
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from pipeline.cases.config import LedgerConfig
from service.http.app import create_app
from service.settings import ServiceSettings

from .conftest import CAMERA_CONFIG

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 12
BUDGET_S = 40.0  # on a slow machine the run stops here (with a warning naming what it skipped), whatever is left
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


def test_every_operation_answers_as_documented(fuzzed_app):
    """Positive and negative examples for every operation; every failure of every check is collected."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzzed_app)
    failures: dict[str, str] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    started, skipped = time.monotonic(), []
    for operation in operations:
        if time.monotonic() - started > BUDGET_S:
            skipped.append(f"{operation.method.upper()} {operation.path}")
            continue
        # Whether bytes are a readable image (or a capture time is past) no schema can say: a schema-valid
        # upload may rightly be refused with 422, so "valid data must be accepted" is not asked of uploads.
        upload = any(body.media_type.startswith("multipart/") for body in operation.body)
        # Likewise a box with its corners swapped (x2 <= x1) is valid JSON of the documented shape (fixtures,
        # the box editor's label sets).
        boxes = "/fixtures" in operation.path or operation.path.endswith("/boxes")
        excluded = [positive_data_acceptance] if upload or boxes else []
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), database=None, phases=[Phase.generate])
            def check(case) -> None:
                # the key, unless this negative case is about the key itself (then it must be refused)
                headers = {} if _mutates_key(case) else {"X-API-Key": KEY}
                case.call_and_validate(headers=headers, excluded_checks=excluded)

            try:
                check()
            except Unsatisfiable:
                assert mode == GenerationMode.NEGATIVE, operation.path  # nothing to negate: no parameters, no body
            except (Exception, BaseExceptionGroup) as e:  # a FailureGroup with the checks that failed, the request and the response
                failures[f"{operation.method.upper()} {operation.path} ({mode.value})"] = str(e)[:3000]
    assert not failures, "\n\n".join(f"{where}:\n{why}" for where, why in failures.items())
    if skipped:
        warnings.warn(f"fuzz time budget of {BUDGET_S:g} s spent; not fuzzed: {', '.join(skipped)}", stacklevel=1)

"""Admission control (issue 22, item 1): inference past the latency budget is refused at once with 503 and
Retry-After, a refused camera frame is not taken (its resend is processed), and /health and the reviewer's
routes answer during a burst of a real `streetorder serve`."""

from __future__ import annotations

import asyncio
import json

import httpx
import numpy as np
import pytest
from pydantic import ValidationError

from pipeline.cli import main
from service.bench_burst import burst_once, burst_requests, send
from service.runtime.admission import HEADROOM, Admission
from service.runtime.errors import Overloaded
from service.runtime.metrics import ServiceMetrics
from service.settings import ServiceSettings
from tests.support.serve import ServeProcess

from .conftest import STREET, T0, metric, post_frame


def _admission(budget_s: float = 1.0, cold_limit: int = 4) -> Admission:
    return Admission(budget_s, 2, ServiceMetrics(), retry_after_s=1, cold_limit=cold_limit, cores=2)


# ---- the estimate ------------------------------------------------------------------------------------------


def test_before_the_detector_was_timed_only_a_batch_is_admitted():
    admission = _admission(cold_limit=4)
    places = [admission.admit() for _ in range(4)]
    for place in places:
        place.__enter__()
    with pytest.raises(Overloaded) as refused:
        admission.admit().__enter__()
    assert refused.value.retry_after_s == 1 and "starting up" in refused.value.detail
    places[0].__exit__(None, None, None)
    with admission.admit():  # a place came free
        assert admission.in_flight == 4


def test_requests_are_admitted_while_the_estimate_fits_the_budget_and_refused_past_it():
    admission = _admission(budget_s=1.0)
    admission.observe_detector(0.4, 4)  # 0.1 s an image
    admission.observe_request(0.0)
    fits = int(1.0 * HEADROOM / 0.1 + 1e-9)  # (in flight + 1) x 0.1 s <= 0.8 s
    places = [admission.admit() for _ in range(fits)]
    for place in places:
        place.__enter__()
    assert admission.in_flight == fits and admission.estimate_s() == pytest.approx((fits + 1) * 0.1)
    with pytest.raises(Overloaded) as refused:
        admission.admit().__enter__()
    assert "latency budget" in refused.value.detail and refused.value.retry_after_s >= 1
    assert admission.in_flight == fits  # a refusal takes no place
    # a slower detector (measured) admits fewer; a long queue is told to come back later
    admission.observe_detector(10.0, 1)
    with pytest.raises(Overloaded) as later:
        admission.admit().__enter__()
    assert later.value.retry_after_s > refused.value.retry_after_s
    for place in places:
        place.__exit__(None, None, None)
    assert admission.in_flight == 0


def test_cpu_outside_the_detector_counts_shared_by_the_cores():
    admission = _admission()
    admission.observe_detector(0.1, 1)
    before = admission.per_request_s()
    for _ in range(50):
        admission.observe_request(0.2)
    assert admission.per_request_s() == pytest.approx(before + 0.2 / 2, rel=1e-3)


def test_served_requests_slower_than_their_estimate_correct_it():
    admission = _admission(budget_s=1.0)
    admission.observe_detector(0.1, 1)
    model = admission.per_request_s()
    for _ in range(60):  # the neighbours take half the cores: every served request took twice its estimate
        with admission.admit() as place:
            place.started -= 2 * place.estimate_s
            place.served = True
    assert admission.correction == pytest.approx(2.0, rel=0.02)
    assert admission.per_request_s() == pytest.approx(2 * model, rel=0.02)
    fits = int(1.0 * HEADROOM / admission.per_request_s())
    places = [admission.admit() for _ in range(fits)]
    for place in places:
        place.__enter__()
    with pytest.raises(Overloaded):  # half as many as the model alone would admit
        admission.admit().__enter__()
    assert fits < int(1.0 * HEADROOM / model) / 1.5


def test_the_budget_is_a_validated_setting():
    assert ServiceSettings().latency_budget_s == 2.0
    with pytest.raises(ValidationError):
        ServiceSettings(latency_budget_s=0)
    with pytest.raises(ValidationError):
        ServiceSettings(inference_threads=0)


# ---- a refused frame is not taken --------------------------------------------------------------------------


def test_a_frame_refused_for_load_is_not_taken_and_its_resend_is_processed(make_client, street_jpeg):
    client = make_client(latency_budget_s=1.0)
    admission = client.app.state.service.detector.admission
    assert post_frame(client, street_jpeg, T0).status_code == 200  # the detector is timed
    admission.observe_detector(10.0, 1)  # now it looks slower than the budget: nothing is admitted
    refused = post_frame(client, street_jpeg, T0.replace(second=2))
    assert refused.status_code == 503, refused.text
    assert int(refused.headers["retry-after"]) >= 1 and "resends the frame" in refused.json()["detail"]
    assert metric(client.get("/metrics").text, "streetorder_shed_total", 'reason="latency_budget"') == 1
    admission.detector_s = 0.01  # the burst is over
    resent = post_frame(client, street_jpeg, T0.replace(second=2))
    assert resent.status_code == 200, resent.text  # not 409: the refused frame never reached the engine
    assert [i["change"] for i in resent.json()["incidents"]] == ["opened"]  # and its dwell counted from the first frame
    assert post_frame(client, street_jpeg, T0.replace(second=2)).status_code == 409  # the resend itself was taken
    assert admission.in_flight == 0


def test_photos_and_detect_are_refused_the_same_way(make_client, street_jpeg):
    client = make_client()
    admission = client.app.state.service.detector.admission
    admission.observe_detector(10.0, 1)
    for path, data in (("/detect", {}), ("/photos", {"lat": "30.29", "lon": "120.16"})):
        answer = client.post(path, data=data, files={"image": ("s.jpg", street_jpeg, "image/jpeg")})
        assert answer.status_code == 503 and "retry-after" in answer.headers, (path, answer.text)
    assert client.get("/cases").json()["total"] == 0
    # a client without a valid key is told so and holds no place, even with its upload in flight
    stranger = client.post("/detect", headers={"X-API-Key": "so_wrong"}, files={"image": ("s.jpg", street_jpeg, "image/jpeg")})
    assert stranger.status_code == 401 and admission.in_flight == 0


# ---- a burst on a real service -----------------------------------------------------------------------------


@pytest.mark.slow
def test_a_burst_sheds_at_once_and_health_and_reviewers_stay_fast(camera_config, models_root, tmp_path, capsys):
    db = f"sqlite:///{tmp_path}/ledger.db"
    keys = {}
    for role in ("camera", "reviewer", "admin"):
        assert main(["keys", "create", "--role", role, "--name", f"burst-{role}", "--db", db, "--json"]) == 0
        keys[role] = json.loads(capsys.readouterr().out)["key"]
    body = STREET.read_bytes()
    args = ["--config", str(camera_config), "--db", db, "--models-dir", str(models_root), "--evidence-dir", str(tmp_path / "engine"), "--log-level", "warning", "--latency-budget", "2"]
    with ServeProcess(args, tmp_path, probe="/ready") as serve:
        requests = burst_requests([body], keys["camera"], serve.port)
        for _ in range(4):  # warm: the detector timed by the service
            assert asyncio.run(send(serve.port, requests[0])).status == 200
        got, health, cases = asyncio.run(burst_once(serve.port, requests, 96, keys["camera"], keys["reviewer"]))
        text = httpx.get(f"{serve.base}/metrics", headers={"X-API-Key": keys["admin"]}).text
    answers = [(a.status, a.seconds, a.retry_after) for a in got]
    health, cases = health.seconds + [float("inf")] * health.failed, cases.seconds + [float("inf")] * cases.failed
    codes = [a[0] for a in answers]
    accepted = [a[1] for a in answers if a[0] == 200]
    print(f"burst of 96: {len(accepted)} accepted, p99 {np.percentile(accepted, 99) if accepted else 0:.2f} s; {codes.count(503)} refused; /health max {max(health):.3f} s; /cases max {max(cases):.3f} s")
    assert set(codes) <= {200, 503} and accepted and 503 in codes, codes  # before: 96 x 200, the last after ~15 s
    assert all(a[2] and int(a[2]) >= 1 for a in answers if a[0] == 503)
    # the refusals come before the body is read: the service's own timing (the client's adds its event loop on
    # these shared cores); the target is 0.1 s, the bound leaves room for a busy machine
    refused = metric(text, "streetorder_request_seconds_count", 'route="unmatched",status="503"')
    assert refused == codes.count(503)
    assert metric(text, "streetorder_request_seconds_bucket", 'le="0.25",method="POST",route="unmatched",status="503"') >= 0.9 * refused
    # targets: accepted p99 <= 2 s, /health within 0.2 s; bounds with room for a shared machine (before: 17 s and 4-10 s)
    assert float(np.percentile(accepted, 99)) < 4.0, sorted(accepted)
    assert health and max(health) < 1.0, sorted(health)[-5:]
    assert cases and max(cases) < 3.0, sorted(cases)[-5:]
    assert metric(text, "streetorder_inference_in_flight") == 0


def test_a_part_runs_on_the_loop_only_when_asked_and_counts_its_cpu():
    import threading

    admission = _admission()

    async def both() -> tuple[str, str, bool, bool]:
        with admission.admit() as job:
            alone = job.alone
            with admission.admit():
                crowded = not job.alone
            here = await job.run(lambda: threading.current_thread().name, here=True)
            pooled = await job.answer(lambda: threading.current_thread().name)
            assert job.served and job.cpu_s >= 0
        return here, pooled, alone, crowded

    here, pooled, alone, crowded = asyncio.run(both())
    assert here == threading.current_thread().name and pooled != here
    assert alone and crowded

"""`bench serve`'s c=1 breakdown: means per step from two scrapes of the service's metrics, the rest attributed."""

from __future__ import annotations

import pytest

from service.bench import _breakdown


def scrape(requests: int, request_s: float, decode_s: float, prepare_s: float, queue_s: float, model_s: float, boxes_s: float) -> str:
    lines = [
        f'streetorder_request_seconds_sum{{method="POST",route="/detect",status="200"}} {request_s}',
        f'streetorder_request_seconds_count{{method="POST",route="/detect",status="200"}} {requests}',
        f'streetorder_request_seconds_sum{{method="GET",route="/metrics",status="200"}} {9.0}',  # other routes are not counted
        f'streetorder_request_seconds_count{{method="GET",route="/metrics",status="200"}} {requests}',
        f"streetorder_queue_wait_seconds_sum {queue_s}",
        f"streetorder_queue_wait_seconds_count {requests}",
        f'streetorder_inference_seconds_sum{{model="street-v2"}} {model_s}',
        f'streetorder_inference_seconds_count{{model="street-v2"}} {requests}',
    ]
    for stage, s in (("decode", decode_s), ("prepare", prepare_s), ("boxes", boxes_s)):
        lines += [f'streetorder_image_stage_seconds_sum{{stage="{stage}"}} {s}', f'streetorder_image_stage_seconds_count{{stage="{stage}"}} {requests}']
    return "\n".join(lines)


def test_the_breakdown_is_the_difference_of_two_scrapes_per_request():
    before = scrape(10, 1.0, 0.1, 0.1, 0.01, 0.5, 0.05)  # what came before the phase is left out
    # 4 requests: 30 ms in the service each, of which decode 1, prepare 2, queue 0.25, model 24, boxes 1
    after = scrape(14, 1.12, 0.104, 0.108, 0.011, 0.596, 0.054)
    out = _breakdown(before, after, served=[0.031] * 4, alone=[0.027] * 4)
    assert out["client"] == 31.0 and out["in the service"] == 30.0 and out["outside the service"] == 1.0
    assert (out["decode"], out["prepare"], out["queue"], out["model"], out["boxes"]) == (1.0, 2.0, 0.25, 24.0, 1.0)
    assert out["rest of the service (framework, hops, JSON)"] == pytest.approx(1.75)
    assert out["detector alone"] == 27.0


def test_a_step_with_no_new_samples_is_not_a_number_not_a_crash():
    same = scrape(10, 1.0, 0.1, 0.1, 0.01, 0.5, 0.05)
    out = _breakdown(same, same, served=[0.03], alone=[0.02])
    assert out["decode"] != out["decode"]  # NaN: nothing was timed between the scrapes

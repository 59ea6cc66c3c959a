"""The vending rule on real photos (datasets/vending-eval.yaml, evaluation only): the served detector with its
cue model, each photo as a patrol photo. Guards the measured figures: the goods and standing-umbrella paths find
stalls the old rule missed without raising false stalls on clean streets."""

from __future__ import annotations

import pytest

from pipeline.config import RulesConfig
from pipeline.detect import DetectorSettings
from pipeline.detect.cascade import load_cue_cascade
from pipeline.train.vending_eval import vending_photo_report

pytestmark = pytest.mark.slow

OLD_RULE = {"still_alone_classes": [], "goods_classes": [], "static_objects": False}  # the rule before goods and standing umbrellas


@pytest.fixture(scope="module")
def report():
    detector = load_cue_cascade(settings=DetectorSettings(conf=0.25), threads=1)
    new = vending_photo_report(detector)
    old = vending_photo_report(detector, RulesConfig.model_validate({"street_vending": OLD_RULE}), groups=("vending", "clean"))
    return new, old


def test_more_real_stalls_become_cases_and_clean_streets_stay_clean(report):
    new, old = report
    found, before = new["groups"]["vending"]["vending_cases"], old["groups"]["vending"]["vending_cases"]
    assert new["groups"]["vending"]["photos"] == 11 and found >= 5 and found > before
    assert new["groups"]["clean"]["photos"] == 64 and new["groups"]["clean"]["vending_cases"] <= 2  # the bound: 2 of 52


def test_an_umbrella_standing_over_goods_with_nobody_under_it_is_a_stall(report):
    new, _ = report
    by_image = {r["image"]: r for r in new["groups"]["vending"]["results"]}
    stand = by_image["streets-in/images/WhatsApp-Image-2024-06-15-at-18-11-19_84cc4037_jpg.jpg"]
    assert stand["vending"] and "umbrella" in stand["classes"]

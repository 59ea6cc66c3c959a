"""The models on disk and the one serving; PUT swaps it without a restart."""

from __future__ import annotations

import json
from dataclasses import asdict

from fastapi import APIRouter, Request

from pipeline.config import RulesConfig

from ...runtime.model_slot import LoadedModel
from ..deps import State
from ..errors import error_responses
from ..paging import Paging, page_fields, window
from ..schemas.models import CurrentModel, ModelChoice, ModelList, ModelSummary, WarmUpOut

router = APIRouter(prefix="/models", tags=["models"])


def describe(model: LoadedModel, rules: RulesConfig) -> CurrentModel:
    names = list(model.detector.names)
    return CurrentModel(
        name=model.name, path=str(model.path), classes=names, imgsz=model.detector.imgsz, loaded_at=model.loaded_at,
        rule_classes_missing=sorted(rules.used_classes() - set(names)),
        warm_up=WarmUpOut(**asdict(model.warm_up)) if model.warm_up else None,
    )


def _summary(state, name: str, serving: LoadedModel | None) -> ModelSummary:
    folder = state.detector.models.models_dir / name
    try:
        card = json.loads((folder / "card.json").read_text(encoding="utf-8")) if (folder / "card.json").is_file() else {}
    except (OSError, ValueError):
        card = {}
    metrics = card.get("metrics") if isinstance(card.get("metrics"), dict) else {}
    day = metrics.get("garbage_cn_val") or {}
    latency = metrics.get("latency_onnx_cpu") or {}
    return ModelSummary(
        name=name, servable=(folder / "model.onnx").is_file(), current=serving is not None and serving.path.parent.resolve() == folder.resolve(),
        created=card.get("created"), architecture=card.get("architecture"), imgsz=card.get("imgsz"), classes=list(card.get("classes") or []),
        map50=day.get("map50"), map50_95=day.get("map50_95"), latency_ms=latency.get("median_ms"),
    )


@router.get("", response_model=ModelList, summary="Models in the models directory, with their card summaries", responses=error_responses(401))
def list_models(state: State, request: Request, page: Paging) -> ModelList:
    slot = state.detector.models
    serving = slot.current
    names = slot.names()
    return ModelList(
        models_dir=str(slot.models_dir), current_file=slot.current_pointer(),
        models=[_summary(state, n, serving) for n in window(names, page)],  # only this page's cards are read
        **page_fields(request, page, len(names)),
    )


@router.get("/current", response_model=CurrentModel, summary="The model serving now", responses=error_responses(401, 503))
def current_model(state: State) -> CurrentModel:
    return describe(state.detector.models.require(), state.cameras.config().rules)


@router.put("/current", response_model=CurrentModel, summary="Swap the serving model (no restart)", responses=error_responses(401, 404, 422))
def swap_model(state: State, choice: ModelChoice) -> CurrentModel:
    """The new model is loaded completely before it replaces the old one; if it fails to load (404 unknown,
    422 broken), the old one keeps serving. Frames already past detection finish with the old model."""
    return describe(state.detector.models.swap(choice.name), state.cameras.config().rules)

"""/models: the models on disk and the one serving."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from .common import Out, Page


class ModelSummary(Out):
    name: str
    servable: bool = Field(description="Has model.onnx (the service serves ONNX only)")
    current: bool = Field(description="Serving now")
    created: str | None = None
    architecture: str | None = None
    imgsz: int | None = None
    classes: list[str] = Field(default_factory=list)
    map50: float | None = Field(None, description="garbage-cn val mAP50 from the card")
    map50_95: float | None = None
    latency_ms: float | None = Field(None, description="Median ONNX CPU latency from the card")


class ModelList(Page):
    models_dir: str
    current_file: str | None = Field(description="What models/CURRENT names (used at startup)")
    models: list[ModelSummary]


class WarmUpOut(Out):
    """What the load's warm-up built (`pipeline.detect.warm_up`)."""

    plans: int = Field(description="Distinct (camera plan, frame size) pairs whose input shapes were built")
    cameras: int
    seconds: float
    left: int = Field(description="Plans past the time budget (STREETORDER_WARM_UP_S): they build on their first frame")
    failed: list[str] = Field(description="Cameras whose input shapes failed to build (see the log)")


class CurrentModel(Out):
    name: str
    path: str
    classes: list[str]
    imgsz: int
    loaded_at: datetime
    rule_classes_missing: list[str] = Field(description="Classes the configured rules look for that this model cannot detect")
    warm_up: WarmUpOut | None = Field(None, description="The cameras' input shapes built at load; null when the warm-up is off")


class ModelChoice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, description="A model folder name in the models directory")

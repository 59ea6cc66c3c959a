"""The class list of the merged street model.

Street classes come first, in garbage-cn's own order, so a garbage-cn label file is already valid for the
merged model. The COCO classes the violation rules need follow; their labels come from the COCO teacher.
"""

from __future__ import annotations

STREET_CLASSES: tuple[str, ...] = ("garbage", "garbage_bin", "overflow")

# COCO id -> name, for the classes the rules use (stall evidence, non-motor vehicles, people, context).
COCO_KEEP: dict[int, str] = {
    0: "person",
    1: "bicycle",
    2: "car",
    3: "motorcycle",
    7: "truck",
    13: "bench",
    25: "umbrella",
    56: "chair",
    60: "dining table",
}

MERGED_CLASSES: tuple[str, ...] = STREET_CLASSES + tuple(COCO_KEEP.values())
COCO_TO_MERGED: dict[int, int] = {coco: len(STREET_CLASSES) + i for i, coco in enumerate(COCO_KEEP)}


def merged_id(name: str) -> int:
    return MERGED_CLASSES.index(name)


# ---- classes an annotator adds in config (issue 9 §5) --------------------------------------------------------
# New classes are appended after MERGED_CLASSES, in the order of the config file, so every old class id stays
# valid: garbage-cn labels, teacher pseudo-labels and old sample versions need no rewrite.

import re  # noqa: E402
from pathlib import Path  # noqa: E402

import yaml  # noqa: E402
from pydantic import BaseModel, ConfigDict, Field, field_validator  # noqa: E402

from ..config.settings import PipelineSettings  # noqa: E402
from ..paths import DATASETS  # noqa: E402

CLASSES_FILE = DATASETS / "classes.yaml"
_CLASS_NAME = re.compile(r"^[a-z][a-z0-9_ ]{0,39}$")


class AddedClass(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(title="Class name", description="Lower case, digits, '_' or space; what labels and rules call it")
    description: str = Field("", title="Description", description="What annotators should box as this class")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _CLASS_NAME.match(v):
            raise ValueError(f"class name '{v}' must be lower case letters, digits, '_' or space, starting with a letter (at most 40)")
        return v


class ClassesConfig(BaseModel):
    """`datasets/classes.yaml`: the classes annotators may label beyond the shipped model's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    added: tuple[AddedClass, ...] = Field((), title="Added classes", description="Appended after the model's classes, in this order; never reorder or remove one that was trained")

    @field_validator("added")
    @classmethod
    def _unique(cls, v: tuple[AddedClass, ...]) -> tuple[AddedClass, ...]:
        names = [c.name for c in v]
        clash = sorted({n for n in names if names.count(n) > 1} | (set(names) & set(MERGED_CLASSES)))
        if clash:
            raise ValueError(f"class(es) {clash} listed twice or already among the model's classes ({', '.join(MERGED_CLASSES)})")
        return v

    @classmethod
    def load(cls, path: str | Path | None = None) -> ClassesConfig:
        path = Path(path or PipelineSettings().classes or CLASSES_FILE)
        if not path.exists():
            return cls()
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise ValueError(f"{path}: not valid YAML: {e}") from None
        try:
            return cls.model_validate(doc)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None


def labelling_classes(path: str | Path | None = None) -> tuple[str, ...]:
    """The class list annotators label with and `streetorder retrain` trains: the merged model's classes, then
    the added ones from `datasets/classes.yaml` (or $STREETORDER_CLASSES, or `path`). Ids are positions here."""
    return MERGED_CLASSES + tuple(c.name for c in ClassesConfig.load(path).added)

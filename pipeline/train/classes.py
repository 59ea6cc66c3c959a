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

"""Which detector a camera's frames go through: the shared model, wrapped per camera as its config asks.

Two steps, in order:
1. cues: when `base` is a `CueCascade` (a street model served with its cue model), only cameras with a
   vending or parking zone run the cue model; the others get the street model alone.
2. slicing (`CameraConfig.slicing`: tiles over the whole frame; `ZoneConfig.slicing`: tiles over that zone's
   bounding box), model by model (`sliced_detector`): each model of step 1's choice gets tiles no larger than
   its own input, and a zone's tiles go only to the models that own a class its rules read (a no_parking zone's
   to the cue model, which owns bicycle and motorcycle; a garbage_watch zone's to the street model). Cost goes
   where it pays.
A camera with neither gets `base` itself, unchanged; so does a patrol photo (no camera). `frame_detector` is
the one choice every caller makes (the engine, the service's batcher, the night's batches). Wrappers are cached
per base detector, camera and regions (which follow from the config and the frame size), so a frame never
rebuilds one; a model swap (a new base) or a config edit simply gets a new entry.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from dataclasses import replace
from functools import cache

import numpy as np

from ..config import CameraConfig, SlicingConfig
from .base import Detector
from .cascade import CueCascade, needs_cues
from .slicing import SliceRegion, SlicedDetector, SliceSettings

_CACHE_PER_BASE = 256  # camera x frame size x config versions; cleared when exceeded
_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def slice_settings(cfg: SlicingConfig) -> SliceSettings:
    return SliceSettings(tiles=tuple(cfg.tiles), overlap=cfg.overlap)


@cache
def kind_classes(kind: str) -> frozenset[str]:
    """The detector classes the rules of a zone kind read (their default thresholds' `used_classes`)."""
    from ..rules.registry import RULES

    return frozenset(c for spec in RULES.values() if any(k.name == kind for k in spec.zone_kinds) for c in spec.thresholds().used_classes())


def sliced_detector(base: Detector, regions: Sequence[SliceRegion] | None = None, settings: SliceSettings | None = None) -> Detector:
    """`base` over tiles of `regions` (None: the whole frame), model by model at each model's own input size.

    A `CueCascade` is sliced inside: its street model and its cue model each get a `SlicedDetector` (tiles no
    larger than 416 and 640 px for street-v2 and yolo11n-coco), so the cue model's bicycles come from tiles too,
    and the cascade takes each class from its owner as before. A region with `classes` goes only to the models
    that own one of them; a model with no region left runs on the full frame alone. A model that owns no
    two-wheeler class (the street model beside its cue model) is not run from the two-wheelers' lower floor: the
    cascade drops its two-wheelers."""
    if not isinstance(base, CueCascade):
        return SlicedDetector(base, settings, regions)
    settings = settings or SliceSettings()

    def part(model: Detector, owned: Sequence[str]) -> Detector:
        mine = None if regions is None else [r for r in regions if r.classes is None or r.classes & set(owned)]
        own = settings if settings.group_classes & set(owned) else replace(settings, group_floor=None)
        return model if mine == [] else SlicedDetector(model, own, mine)

    return base.with_models(part(base.primary, base.primary_classes), part(base.cue, (*base.shared, *base.extra)) if base.cue_classes else base.cue)


def slicing_regions(camera: CameraConfig, width: int, height: int) -> tuple[SliceRegion, ...]:
    """The regions to tile on a `width` x `height` frame of `camera`: the whole frame if the camera slices (every
    class), plus the bounding box of each zone that slices (zone coordinates scaled as the zones are), for the
    classes its kind's rules read."""
    regions = []
    if camera.slicing is not None and camera.slicing.enabled:
        regions.append(SliceRegion((0.0, 0.0, float(width), float(height)), slice_settings(camera.slicing)))
    for zone in camera.zones:
        if zone.slicing is None or not zone.slicing.enabled:
            continue
        xs, ys = zip(*zone.pixel_polygon(width, height, camera.resolution))
        box = tuple(round(v, 1) for v in (max(0.0, min(xs)), max(0.0, min(ys)), min(float(width), max(xs)), min(float(height), max(ys))))
        if box[2] > box[0] and box[3] > box[1]:  # a thin zone on a small frame can round to no area: nothing to tile
            regions.append(SliceRegion(box, slice_settings(zone.slicing), kind_classes(zone.kind)))
    return tuple(regions)


def _sliced(base: Detector, camera: CameraConfig, width: int, height: int) -> Detector:
    regions = slicing_regions(camera, width, height)
    if not regions:
        return base
    key = (camera.id, regions)
    try:
        with _lock:
            per_base = _cache.setdefault(base, {})
            det = per_base.get(key)
            if det is None:
                if len(per_base) >= _CACHE_PER_BASE:
                    per_base.clear()
                det = per_base[key] = sliced_detector(base, regions)
        return det
    except TypeError:  # a base that cannot be weakly referenced: build it uncached
        return sliced_detector(base, regions)


def camera_detector(base: Detector, camera: CameraConfig, width: int, height: int) -> Detector:
    """The detector for a `width` x `height` frame of `camera`: cues where its zones need them, then slicing."""
    if isinstance(base, CueCascade) and not needs_cues([z.kind for z in camera.zones]):
        base = base.primary
    return _sliced(base, camera, width, height)


def frame_detector(base: Detector, camera: CameraConfig | None, image: np.ndarray) -> Detector:
    """The detector `image` goes through: `camera_detector` at the image's size, or `base` itself for a patrol
    photo (`camera` None)."""
    if camera is None:
        return base
    height, width = image.shape[:2]
    return camera_detector(base, camera, width, height)

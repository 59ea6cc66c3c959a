"""Street model plus a cue model: the COCO classes the vending and parking rules need, seen at full strength.

A nano street model fine-tuned at 320–416 px keeps the COCO cue classes only partly (v1: umbrella and bench
recall 0 against the COCO model, bicycle 0.59). Rather than ask one small model to be good at both, a camera
whose zones need cues (vending or parking) also runs the COCO model itself at 640 px, and its boxes replace
the street model's for the classes both know. Cameras that only watch garbage pay nothing extra.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np
import supervision as sv

from ..rules.registry import zone_kinds
from .base import Detector, make_detections, warm
from .exported import Prepared


@dataclass(frozen=True)
class CascadePrepared:
    """One image prepared for the street model and (when its classes are wanted) the cue model."""

    primary: Prepared
    cue: Prepared | None

    @property
    def nbytes(self) -> int:
        return self.primary.nbytes + (self.cue.nbytes if self.cue is not None else 0)


class CueCascade:
    """`primary` for everything, `cue` for the classes both models know that are not the primary's own.

    >>> det = CueCascade(street_model, coco_model, street_classes=("garbage", "garbage_bin", "overflow"))
    >>> [d] = det.detect([frame])   # garbage from the street model, people and bikes from the COCO model
    """

    def __init__(
        self, primary: Detector, cue: Detector, street_classes: Sequence[str], keep: Sequence[str] | None = None, extra: Sequence[str] = (),
    ) -> None:
        self.primary, self.cue = primary, cue
        shared = [n for n in cue.names if n in primary.names and n not in street_classes]
        if not shared:
            raise ValueError("the cue model shares no class with the street model: nothing to take from it")
        self.shared = tuple(shared)  # the classes taken from the cue model, never from the primary
        # `extra`: classes only the cue model knows that the rules read (goods: fruit, bottles, bowls), after the
        # primary's own in `names`, so the primary's class ids stay as they are
        self.extra = tuple(n for n in cue.names if n in extra and n not in primary.names)
        # `keep` is the caller's class filter; the primary applied it already
        self.cue_classes: tuple[str, ...] = tuple(n for n in (*shared, *self.extra) if keep is None or n in keep)
        self.names: tuple[str, ...] = (*primary.names, *self.extra)
        self.backend = f"{getattr(primary, 'backend', '?')}+cue:{getattr(cue, 'backend', '?')}"

    def with_models(self, primary: Detector, cue: Detector) -> CueCascade:
        """The same cascade (classes, ownership) over other detectors for the two models: each sliced at its own
        input size (`plan.sliced_detector`)."""
        from copy import copy

        other = copy(self)
        other.primary, other.cue = primary, cue
        return other

    @property
    def primary_classes(self) -> tuple[str, ...]:
        """The classes the street model owns (every one of its own but those taken from the cue model)."""
        return tuple(n for n in self.primary.names if n not in self.shared)

    @property
    def imgsz(self) -> int | None:
        """The street model's input size (the cue model has its own, in its card)."""
        return getattr(self.primary, "imgsz", None)

    def detect(self, images: Sequence[np.ndarray]) -> list[sv.Detections]:
        if not len(images):
            return []
        if not self.cue_classes:  # the caller wants none of the cue classes: skip the second model
            return [self._merge(p, p[:0]) for p in self.primary.detect(images)]
        return [self._merge(p, c) for p, c in zip(self.primary.detect(images), self.cue.detect(images))]

    @property
    def preparable(self) -> bool:
        return getattr(self.primary, "preparable", False) and (not self.cue_classes or getattr(self.cue, "preparable", False))

    # `prepare` takes `spare`: an executor that makes the cue model's input while the calling thread makes the
    # street model's. A service with an idle core passes one (`MicroBatcher`): the two are independent, 2-3 ms of
    # numpy and OpenCV a frame, which release the GIL. (Boxes are not split so: NMS and merging are small Python
    # steps that hold it, and a spare thread made them no faster at c=1.)
    uses_spare = True

    def prepare(self, image: np.ndarray, spare: Executor | None = None) -> CascadePrepared:
        """The image as both models' inputs (see `ExportedDetector.prepare`)."""
        if not self.cue_classes:
            return CascadePrepared(self.primary.prepare(image), None)
        if spare is None:
            return CascadePrepared(self.primary.prepare(image), self.cue.prepare(image))
        cue = spare.submit(self.cue.prepare, image)
        try:
            own = self.primary.prepare(image)
        finally:
            cue_input = cue.result()  # waited for even when ours failed: nothing of this image outlives the call
        return CascadePrepared(own, cue_input)

    def detect_prepared(self, prepared: Sequence[CascadePrepared]) -> list[sv.Detections]:
        return [self.finish(raw, p) for raw, p in zip(self.infer_prepared(prepared), prepared)]

    def warm(self, sizes: Sequence[tuple[int, int]]) -> None:
        """Both models' per-shape builds (`base.warm`); the cue model's only where it runs."""
        warm(self.primary, sizes)
        if self.cue_classes:
            warm(self.cue, sizes)

    def infer_prepared(self, prepared: Sequence[CascadePrepared]) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """Both models' raw outputs for each image (see `ExportedDetector.infer_prepared`)."""
        if not len(prepared):
            return []
        own = self.primary.infer_prepared([p.primary for p in prepared])
        if not self.cue_classes:
            return [(o, None) for o in own]
        return list(zip(own, self.cue.infer_prepared([p.cue for p in prepared])))

    def finish(self, raw: tuple[np.ndarray, np.ndarray | None], prepared: CascadePrepared) -> sv.Detections:
        own = self.primary.finish(raw[0], prepared.primary)
        return self._merge(own, own[:0] if raw[1] is None else self.cue.finish(raw[1], prepared.cue))

    def _merge(self, own: sv.Detections, cue: sv.Detections) -> sv.Detections:
        own = own[~np.isin(own.data["class_name"], self.shared)]
        cue = cue[np.isin(cue.data["class_name"], self.cue_classes)]
        ids = np.array([self.names.index(n) for n in cue.data["class_name"]], dtype=int)
        cue = make_detections(cue.xyxy, cue.confidence, ids, self.names)
        merged = sv.Detections.merge([own, cue]) if len(own) and len(cue) else (cue if len(cue) else own)
        order = np.argsort(-merged.confidence, kind="stable")
        return merged[order]


def needs_cues(kinds: Sequence[str]) -> bool:
    """Whether a camera with zones of these kinds has a rule that reads cue classes (vending: umbrella, table,
    chair, bench with a person; parking: bicycles and motorcycles). A camera with none never runs the cue model."""
    declared = zone_kinds()
    return any(declared[k].cues for k in kinds if k in declared)


def load_cue_cascade(spec=None, backend: str = "onnx", settings=None, threads: int | None = None, extra: Sequence[str] | None = None) -> Detector:
    """The model `spec` with the cue model its card names (`cue_model: {name, imgsz}`), or the model alone.

    The cue model runs with the same score, NMS and box limits as the street model, at its own size. Besides
    the classes both know, it gives `extra` classes only it knows (default: those the default rules read, such
    as the goods of a stall).
    """
    from dataclasses import replace

    from .base import DetectorSettings
    from .registry import load_detector, resolve_model

    settings = settings or DetectorSettings()
    ref = resolve_model(spec)
    primary = load_detector(spec, backend=backend, settings=settings, threads=threads)
    cue_spec = ref.card.get("cue_model")
    if not cue_spec:
        return primary
    # a sibling folder of the model first (a service's own models dir), else the registry's models dir
    home = (ref.onnx or ref.pt).parent.parent if (ref.onnx or ref.pt) else None
    cue_name = home / cue_spec["name"] if home is not None and (home / cue_spec["name"]).is_dir() else cue_spec["name"]
    cue = load_detector(cue_name, backend=backend, settings=replace(settings, classes=None, imgsz=cue_spec.get("imgsz")), threads=threads)
    if extra is None:
        from ..config import RulesConfig

        extra = tuple(RulesConfig().used_classes())
    return CueCascade(primary, cue, ref.card.get("street_classes") or (), keep=settings.classes, extra=extra)

"""The images the variant gate reads, from ../shared: garbage-cn val (mAP), the cue set (streets-in holdout, vtest
frames, garbage-cn val: `cue_eval.cue_images`) and, inside it, the streets-in holdout with its human two-wheeler
labels. `limit` cuts each set to its first images, for tests; the card's numbers come from the full sets."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..formats.yolo import list_images
from ..paths import SHARED, STREETS_SPLIT
from .cue_eval import CueImage, cue_images
from .dataset import Sources


@dataclass(frozen=True)
class GateSets:
    shared: Path = SHARED
    limit: int | None = None  # at most this many images of each set (None: all)

    @property
    def data_yaml(self) -> Path:
        return self.shared / "data" / "garbage-cn" / "data.yaml"

    def garbage_val(self) -> list[Path]:
        images = list_images(self.shared / "data" / "garbage-cn" / "val" / "images")
        return images[: self.limit] if self.limit else images

    def cue(self) -> Iterator[CueImage]:
        """The cue set, each of its three parts cut to `limit` images."""
        data = self.shared / "data"
        sources = Sources(data / "garbage-cn", data / "streets-in", STREETS_SPLIT)
        items = cue_images(sources, data / "video" / "vtest.avi", data / "garbage-cn" / "val" / "images")
        if not self.limit:
            yield from items
            return
        for _, group in itertools.groupby(items, key=lambda c: c.set):
            yield from itertools.islice(group, self.limit)

    def describe(self) -> dict:
        return {"shared": str(self.shared), "limit_per_set": self.limit}

"""Letterbox resize, matching ultralytics' `LetterBox(auto=False, center=True)` to the pixel.

Matching it exactly is what makes the ONNX backend agree with the ultralytics one (the parity test).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Letterbox:
    """How one image was placed in the square input: scale, then pad left/top."""

    ratio: float
    pad_left: int
    pad_top: int

    def boxes_to_source(self, xyxy: np.ndarray, width: int, height: int) -> np.ndarray:
        out = xyxy.copy()
        out[:, [0, 2]] = (out[:, [0, 2]] - self.pad_left) / self.ratio
        out[:, [1, 3]] = (out[:, [1, 3]] - self.pad_top) / self.ratio
        out[:, [0, 2]] = out[:, [0, 2]].clip(0, width)
        out[:, [1, 3]] = out[:, [1, 3]].clip(0, height)
        return out


def letterbox(image: np.ndarray, size: int, color: int = 114) -> tuple[np.ndarray, Letterbox]:
    h, w = image.shape[:2]
    r = min(size / h, size / w)
    new_w, new_h = max(round(w * r), 1), max(round(h * r), 1)
    dw, dh = (size - new_w) / 2, (size - new_h) / 2
    if (new_w, new_h) != (w, h):
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    out = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(color, color, color))
    return out, Letterbox(r, left, top)

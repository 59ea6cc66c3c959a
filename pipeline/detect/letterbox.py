"""Letterbox resize, matching ultralytics' `LetterBox(center=True)` to the pixel: `auto=False` (the square) or
`auto=True` (the smallest rectangle of whole strides holding the scaled image, as ultralytics' predict does).

Matching it exactly is what makes the exported backends agree with the ultralytics one (the parity test). The
rectangle is what makes a wide camera frame cheap: a 1920x1080 frame at 416 px is a 416x256 input, 38% fewer
pixels than the 416x416 square, and the model's cost goes with its pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

STRIDE = 32  # YOLO's largest stride: an input side must be a multiple of it


@dataclass(frozen=True)
class Letterbox:
    """How one image was placed in the model's input: scale, then pad left/top."""

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


def input_shape(height: int, width: int, size: int, rect: bool = False) -> tuple[int, int]:
    """The model input (h, w) an image of `height` x `width` is letterboxed into."""
    if not rect:
        return size, size
    r = min(size / height, size / width)
    new_w, new_h = max(round(width * r), 1), max(round(height * r), 1)
    return new_h + (size - new_h) % STRIDE, new_w + (size - new_w) % STRIDE


def letterbox(image: np.ndarray, size: int, color: int = 114, rect: bool = False) -> tuple[np.ndarray, Letterbox]:
    """`image` scaled to fit `size` x `size` and padded, centred, to the square (or with `rect`, to the smallest
    stride-multiple rectangle)."""
    h, w = image.shape[:2]
    r = min(size / h, size / w)
    new_w, new_h = max(round(w * r), 1), max(round(h * r), 1)
    out_h, out_w = input_shape(h, w, size, rect)
    dw, dh = (out_w - new_w) / 2, (out_h - new_h) / 2
    if (new_w, new_h) != (w, h):
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    out = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(color, color, color))
    return out, Letterbox(r, left, top)

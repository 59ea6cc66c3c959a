"""Night simulation: what a street camera records after dark.

Night footage is darker, often grayscale (the camera switches to infrared), and noisy (high sensor gain).
`simulate_night` draws one such look per call. It serves two jobs: a training augmentation, so recall does not
collapse at night, and a fixed, seeded copy of a validation set, to measure exactly that. Needs only numpy
and OpenCV, so evaluation runs without torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class NightLook:
    """Parameters of one simulated night image."""

    brightness: float  # multiplier on linear intensity, 0.15..0.45
    gamma: float  # >1 crushes shadows, like a dark scene under street lights
    infrared: bool  # grayscale, as from an IR-switched camera
    noise_sigma: float  # std of Gaussian sensor noise, in 0..255 units
    blur: int  # odd kernel size of a slight motion/focus blur, 0 for none

    @classmethod
    def draw(cls, rng: np.random.Generator) -> "NightLook":
        blur = int(rng.choice([0, 0, 3]))
        return cls(
            brightness=float(rng.uniform(0.15, 0.45)),
            gamma=float(rng.uniform(1.2, 1.8)),
            infrared=bool(rng.random() < 0.5),
            noise_sigma=float(rng.uniform(4.0, 14.0)),
            blur=blur,
        )


def apply_night(image: np.ndarray, look: NightLook, rng: np.random.Generator) -> np.ndarray:
    """Return a night version of a BGR uint8 image (same shape)."""
    img = image.astype(np.float32) / 255.0
    if look.infrared:
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255.0
        img = np.repeat(gray[..., None], 3, axis=2)
    else:
        # Sodium street lights: warm cast, blue channel dimmed.
        img = img * np.array([0.75, 0.95, 1.05], dtype=np.float32)
    img = np.power(np.clip(img, 0, 1), look.gamma) * look.brightness
    img = img * 255.0
    noise = rng.normal(0.0, look.noise_sigma, size=img.shape[:2] + ((1,) if look.infrared else (3,)))
    img = img + noise.astype(np.float32)
    out = np.clip(img, 0, 255).astype(np.uint8)
    if look.blur:
        out = cv2.GaussianBlur(out, (look.blur, look.blur), 0)
    return out


def simulate_night(image: np.ndarray, seed: int | None = None, rng: np.random.Generator | None = None) -> np.ndarray:
    """Night version of `image`; the same `seed` gives the same result (for fixed evaluation copies)."""
    rng = rng if rng is not None else np.random.default_rng(seed)
    return apply_night(image, NightLook.draw(rng), rng)


class NightAugment:
    """Ultralytics-style transform: with probability `p`, turn the training image into a night image.

    It works on the `labels` dict of ultralytics' dataset pipeline and only touches `labels["img"]`, so boxes
    stay valid. Insert it before the final `Format` step. Randomness comes from numpy's global state, which
    ultralytics seeds per dataloader worker, so runs repeat with a fixed seed and workers do not repeat
    each other.
    """

    def __init__(self, p: float = 0.3) -> None:
        self.p = p

    def __call__(self, labels: dict) -> dict:
        if np.random.random() < self.p:
            rng = np.random.default_rng(np.random.randint(0, 2**31 - 1))
            labels["img"] = simulate_night(labels["img"], rng=rng)
        return labels

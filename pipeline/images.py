"""Read one image file safely: every way a file can be bad becomes an `ImageError` with a reason.

Decoding goes through Pillow because it reports truncated files (OpenCV silently returns a half-grey
image) and lets the size be checked from the header before any pixels are decoded (decompression bombs).
EXIF orientation is applied, as OpenCV and phone galleries do, so boxes match what a person sees.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
MAX_BYTES = 50 * 1024 * 1024
MAX_PIXELS = 80_000_000  # about 10000 x 8000; larger is not a camera frame or patrol photo

Image.MAX_IMAGE_PIXELS = None  # we check the size ourselves, with a clear message


class ImageError(ValueError):
    """An image that cannot be used; `str()` is the reason, fit for a user."""


def open_pil(source) -> Image.Image:
    """`PIL.Image.open` that fails the same way in every process.

    Once ultralytics is imported (training, evaluation, the parity tests) it patches `Image.open` to try a HEIF
    plugin on unidentified files, and raises ImportError when pi-heif is missing; that is turned back into PIL's
    own UnidentifiedImageError here, so callers need to know about one error only.
    """
    try:
        return Image.open(source)
    except ImportError:
        raise UnidentifiedImageError(f"cannot identify image file {source!r}") from None


def decode_image(data: bytes, name: str = "image", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode encoded image bytes to a BGR uint8 array."""
    if not data:
        raise ImageError(f"{name}: empty file (0 bytes)")
    try:
        with open_pil(io.BytesIO(data)) as im:
            w, h = im.size
            if w * h > max_pixels:
                raise ImageError(f"{name}: image too large ({w}x{h} = {w * h / 1e6:.0f} MP, limit {max_pixels / 1e6:.0f} MP)")
            if w == 0 or h == 0:
                raise ImageError(f"{name}: image has zero size")
            im.load()  # raises on truncated data
            im = ImageOps.exif_transpose(im) if im.getexif() else im
            rgb = np.asarray(im.convert("RGB"))
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not a readable image (unknown or corrupt format)") from None
    except OSError as e:
        msg = str(e)
        if "truncated" in msg.lower():
            raise ImageError(f"{name}: truncated image ({msg})") from None
        raise ImageError(f"{name}: corrupt image ({msg})") from None
    except (ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise ImageError(f"{name}: corrupt image ({e})") from None
    return np.ascontiguousarray(rgb[..., ::-1])


def load_image(path: str | Path, max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read an image file to a BGR uint8 array, or raise `ImageError` saying why not."""
    path = Path(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise ImageError(f"{path}: unsupported file type '{path.suffix or '(none)'}' (supported: {', '.join(sorted(IMAGE_SUFFIXES))})")
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except OSError as e:
        raise ImageError(f"{path}: cannot read ({e.strerror})") from None
    if not path.is_file():
        raise ImageError(f"{path}: not a regular file")
    if size > max_bytes:
        raise ImageError(f"{path}: file too large ({size / 1e6:.1f} MB, limit {max_bytes / 1e6:.0f} MB)")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ImageError(f"{path}: cannot read ({e.strerror})") from None
    return decode_image(data, str(path), max_pixels)


def expand_paths(paths: list[str | Path]) -> list[Path]:
    """Files as given, folders expanded recursively (sorted). Every file in a folder is kept, so unsupported
    ones get reported instead of silently skipped; hidden files are left out."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith(".")))
        else:
            out.append(p)
    return out

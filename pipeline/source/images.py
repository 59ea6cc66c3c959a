"""Read one image file safely: every way a file can be bad becomes an `ImageError` with a reason.

Decoding goes through Pillow because it reports truncated files (OpenCV silently returns a half-grey
image) and lets the size be checked from the header before any pixels are decoded (decompression bombs).
Only the formats a street camera or a phone sends are offered to Pillow (`FORMATS`): its other decoders
(EPS through Ghostscript, PSD, ICO, PCX, SGI, ...) are attack surface that no camera needs. Unusual pixel
modes are converted to 8-bit BGR the way a viewer shows them (16-bit and float grey scaled down, not clipped
to white; alpha composited on white), or refused with a reason. EXIF orientation is applied, as OpenCV and
phone galleries do, so boxes match what a person sees.

A JPEG whose data stops before the size its header declares is truncated, whether or not it ends with an
end-of-image marker: libjpeg only warns and fills the rest with grey (a 640x640 picture declared 7000x7000 would
be detected on as 49 MP of grey). libjpeg-turbo's warnings are errors through simplejpeg's strict mode, so
both forms are a 422 with the same reason.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
import simplejpeg
from PIL import Image, ImageOps, UnidentifiedImageError
from PIL import BmpImagePlugin, JpegImagePlugin, PngImagePlugin, TiffImagePlugin, WebPImagePlugin  # noqa: F401  (register FORMATS)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
# Pillow format ids decoded at all (JPEG includes a phone's multi-picture MPO, which Pillow opens as JPEG).
FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF")
FORMAT_NAMES = "JPEG, PNG, WebP, BMP, TIFF"
ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
MAX_BYTES = 50 * 1024 * 1024
MAX_PIXELS = 50_000_000  # a 48 MP phone photo (8000 x 6000) passes; 80000 x 1000 is not a frame or a photo
# Peak bytes per pixel while one image is decoded and converted (Pillow keeps RGB as 4 bytes a pixel, the
# numpy copy and the BGR result take 3 each, an EXIF rotation one more Pillow copy): what a memory budget
# for concurrent decodes reserves per image (service/runtime/decode_budget.py). Measured in tests/source/test_images.py.
DECODE_BYTES_PER_PIXEL = 14
PLAIN_JPEG_BYTES_PER_PIXEL = 4  # libjpeg-turbo's BGR result and its row buffers (measured: 3.1; OpenCV's imdecode took 6.3)

Image.MAX_IMAGE_PIXELS = None  # we check the size ourselves, with a clear message


class ImageError(ValueError):
    """An image that cannot be used; `str()` is the reason, fit for a user."""


@dataclass(frozen=True)
class ImageInfo:
    """What an image's header says, read without decoding a pixel."""

    format: str
    mode: str
    width: int
    height: int
    plain_jpeg: bool = False  # decoded by libjpeg-turbo straight to BGR (`_plain_jpeg`): less memory

    @property
    def pixels(self) -> int:
        return self.width * self.height

    def decode_bytes(self) -> int:
        """Peak memory its decode takes (an upper estimate), for a budget over concurrent decodes."""
        if self.plain_jpeg:
            return self.pixels * PLAIN_JPEG_BYTES_PER_PIXEL
        per_pixel = DECODE_BYTES_PER_PIXEL
        if self.mode in ALPHA_MODES or self.mode == "P":
            per_pixel += 8  # the RGBA copy and the white canvas
        elif self.mode not in ("RGB", "L"):
            per_pixel += 4  # Pillow's RGB copy (CMYK, YCbCr, 1)
        elif self.mode.startswith("I") or self.mode == "F":
            per_pixel = 4 * 3 + 3  # 32-bit copy, float32 scaling, grey and BGR results
        return self.pixels * per_pixel

    def fallback_bytes(self) -> int:
        """What more a plain JPEG needs when libjpeg-turbo cannot decode it after all and Pillow does (see
        `decode_image(on_fallback=...)`); 0 for an image that goes to Pillow anyway."""
        if not self.plain_jpeg:
            return 0
        return replace(self, plain_jpeg=False).decode_bytes() - self.decode_bytes()


def open_pil(source, formats: tuple[str, ...] | None = FORMATS) -> Image.Image:
    """`PIL.Image.open` limited to `formats` that fails the same way in every process.

    Once ultralytics is imported (training, evaluation, the parity tests) it patches `Image.open` to try a HEIF
    plugin on unidentified files, and raises ImportError when pi-heif is missing; that is turned back into PIL's
    own UnidentifiedImageError here, so callers need to know about one error only.
    """
    try:
        return Image.open(source, formats=list(formats) if formats else None)
    except ImportError:
        raise UnidentifiedImageError(f"cannot identify image file {source!r}") from None


def _unidentified(name: str) -> ImageError:
    # Not named even when Pillow could: asking its other plugins to parse the bytes is what FORMATS avoids.
    return ImageError(f"{name}: not a readable image: unknown, refused or corrupt format (accepted: {FORMAT_NAMES})")


def probe_image(source: bytes | BinaryIO, name: str = "image", max_pixels: int = MAX_PIXELS) -> ImageInfo:
    """Format, mode and size from the header alone; ImageError for a refused format or size. Cheap: a
    decompression bomb is turned away here, before its pixels take any memory."""
    f = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    if isinstance(source, (bytes, bytearray)) and not source:
        raise ImageError(f"{name}: empty file (0 bytes)")
    try:
        with open_pil(f) as im:
            info = ImageInfo(im.format, im.mode, *im.size, plain_jpeg=_is_plain_jpeg(im, _tail(f)))
    except UnidentifiedImageError:
        raise _unidentified(name) from None
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageError(f"{name}: corrupt image ({e})") from None
    _check_size(info, name, max_pixels)
    return info


def _check_size(info: ImageInfo, name: str, max_pixels: int) -> None:
    w, h = info.width, info.height
    if w * h > max_pixels:
        raise ImageError(f"{name}: image too large ({w}x{h} = {w * h / 1e6:.1f} MP, limit {max_pixels / 1e6:.1f} MP)")
    if w == 0 or h == 0:
        raise ImageError(f"{name}: image has zero size")


def _to_bgr(im: Image.Image, name: str) -> np.ndarray:
    """8-bit BGR from any mode Pillow gives for FORMATS, as a viewer would show it."""
    mode = im.mode
    if mode in ALPHA_MODES or (mode == "P" and "transparency" in im.info):  # on white, not on what hides under alpha
        rgba = im.convert("RGBA")
        im = Image.new("RGB", im.size, (255, 255, 255))
        im.paste(rgba, mask=rgba.getchannel("A"))
        del rgba
        mode = "RGB"
    if mode.startswith("I;16") or mode in ("I", "F"):  # 16-bit, 32-bit or float grey: scaled, never clipped to white
        return cv2.cvtColor(_grey8(np.asarray(im), mode, name), cv2.COLOR_GRAY2BGR)
    if mode not in ("RGB", "L"):
        try:
            im = im.convert("RGB")  # 1, P, CMYK, YCbCr; LAB and HSV fail here
        except (ValueError, OSError) as e:
            raise ImageError(f"{name}: {mode} images cannot be shown in colour ({e}); send RGB or greyscale") from None
    arr = np.asarray(im)
    return cv2.cvtColor(arr, cv2.COLOR_GRAY2BGR if arr.ndim == 2 else cv2.COLOR_RGB2BGR)


def _grey8(grey: np.ndarray, mode: str, name: str) -> np.ndarray:
    """Scale 16-bit, 32-bit integer or float grey to 8 bits over the range its type implies: 16-bit modes
    over 0-65535, float over 0-1 when it stays there, 32-bit values over 0-255 or 0-65535."""
    top, low = (float(grey.max()), float(grey.min())) if grey.size else (0.0, 0.0)
    if low < 0 or not np.isfinite(top) or not np.isfinite(low):
        raise ImageError(f"{name}: {mode} image with negative or non-finite values; send an 8-bit or 16-bit image")
    if mode.startswith("I;16"):
        full = 65535.0
    elif mode == "F" and top <= 1.0:
        full = 1.0
    else:
        full = 255.0 if top <= 255 else 65535.0
    if top > full:
        raise ImageError(f"{name}: {mode} image with values up to {top:g}, beyond 16 bits; send an 8-bit or 16-bit image")
    return (grey.astype(np.float32) * (255.0 / full) + 0.5).astype(np.uint8)


def _tail(f: BinaryIO, n: int = 64) -> bytes:
    f.seek(0, 2)
    f.seek(max(0, f.tell() - n))
    return f.read(n)


def _is_plain_jpeg(im: Image.Image, tail: bytes) -> bool:
    """A complete, upright RGB or grey JPEG: what a camera sends, and what `_plain_jpeg` decodes."""
    return im.format == "JPEG" and im.mode in ("RGB", "L") and tail.rstrip(b"\0")[-2:] == b"\xff\xd9" and im.getexif().get(0x0112, 1) == 1


def _plain_jpeg(im: Image.Image, data: bytes, name: str = "image") -> np.ndarray | None:
    """A plain JPEG (`_is_plain_jpeg`) decoded by libjpeg-turbo (simplejpeg) straight to BGR; None for anything
    else, which Pillow decodes. Same libjpeg-turbo and settings (accurate DCT, smooth upsampling), so the same
    pixels as Pillow (checked in tests/source/test_images.py), in half the time and memory: Pillow's RGB copy and the
    BGR conversion are skipped. A file that does not end with the end-of-image marker goes to Pillow, which
    reports it as truncated; one whose data stops early although it ends with the marker is refused here."""
    if not _is_plain_jpeg(im, data[-64:]):
        return None
    out = _strict_jpeg(data, name, im.size)
    return out if out is not None and out.shape[:2] == (im.height, im.width) else None


# libjpeg-turbo's warnings for data that ends before the image does (JWRN_JPEG_EOF, JWRN_HIT_MARKER with no data left)
_PREMATURE = ("premature end",)


def _strict_jpeg(data: bytes, name: str, size: tuple[int, int], *, colorspace: str = "BGR", scale_down: bool = False) -> np.ndarray | None:
    """Decode with libjpeg's warnings as errors: ImageError for data that stops short of the declared size; for
    other warnings (extraneous bytes before a marker, common in some cameras' files) the lenient decode, as
    OpenCV and Pillow give it; None where libjpeg-turbo cannot decode it at all. `scale_down`: decode at 1/8
    scale, only to check that the data is complete (the entropy-coded data is read whole at any scale)."""
    small = {"min_width": 1, "min_height": 1} if scale_down else {}
    try:
        return simplejpeg.decode_jpeg(data, colorspace=colorspace, fastdct=False, fastupsample=False, strict=True, **small)
    except ValueError as e:
        if any(p in str(e).lower() for p in _PREMATURE):
            raise ImageError(f"{name}: truncated image: its data stops before the {size[0]}x{size[1]} pixels its header declares ({e})") from None
        try:
            return simplejpeg.decode_jpeg(data, colorspace=colorspace, fastdct=False, fastupsample=False, strict=False, **small)
        except ValueError:
            return None


def _check_jpeg_complete(im: Image.Image, data: bytes, name: str) -> None:
    """For a JPEG that Pillow decodes (EXIF-rotated, CMYK, ...): the same check of complete data as `_plain_jpeg`."""
    if im.format != "JPEG":
        return
    try:
        colorspace = "CMYK" if simplejpeg.decode_jpeg_header(data)[2] in ("CMYK", "YCCK") else "GRAY"
    except ValueError:
        return  # Pillow reports what is wrong with it
    _strict_jpeg(data, name, im.size, colorspace=colorspace, scale_down=True)


def decode_image(
    data: bytes, name: str = "image", max_pixels: int = MAX_PIXELS, on_fallback: Callable[[], object] | None = None, info: ImageInfo | None = None,
) -> np.ndarray:
    """Decode encoded image bytes to a BGR uint8 array. `on_fallback` is called before Pillow decodes an image
    that looked like a plain JPEG (the service reserves the memory Pillow needs beyond libjpeg-turbo's there).
    `info`: what `probe_image(data, name, max_pixels)` said of these bytes; a plain JPEG then goes straight to
    libjpeg-turbo, its header not parsed again (a tenth of a millisecond an upload)."""
    if not data:
        raise ImageError(f"{name}: empty file (0 bytes)")
    if info is not None and info.plain_jpeg:
        out = _strict_jpeg(data, name, (info.width, info.height))
        if out is not None and out.shape[:2] == (info.height, info.width):
            return out
    f = io.BytesIO(data)
    try:
        with open_pil(f) as im:
            _check_size(ImageInfo(im.format, im.mode, *im.size), name, max_pixels)
            fast = _plain_jpeg(im, data, name)
            if fast is not None:
                return fast
            if on_fallback is not None and _is_plain_jpeg(im, data[-64:]):
                on_fallback()
            _check_jpeg_complete(im, data, name)
            im.load()  # raises on truncated data
            if im.getexif().get(0x0112, 1) != 1:
                im = ImageOps.exif_transpose(im)
            return _to_bgr(im, name)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise _unidentified(name) from None
    except OSError as e:
        msg = str(e)
        if "truncated" in msg.lower():
            raise ImageError(f"{name}: truncated image ({msg})") from None
        raise ImageError(f"{name}: corrupt image ({msg})") from None
    except (ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise ImageError(f"{name}: corrupt image ({e})") from None


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

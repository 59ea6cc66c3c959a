"""Every way an image file can be bad gives an ImageError with a reason; good files decode like OpenCV."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from pipeline.source.images import ImageError, decode_image, expand_paths, load_image

from tests.conftest import val_images


def test_good_jpeg_matches_opencv():
    path = val_images(1)[0]
    ours = load_image(path)
    ref = cv2.imread(str(path))
    assert ours.shape == ref.shape and ours.dtype == np.uint8
    assert np.abs(ours.astype(int) - ref.astype(int)).mean() < 1.0  # same libjpeg, tiny IDCT differences at most


@pytest.mark.parametrize(
    "name, content, reason",
    [
        ("empty.jpg", b"", "empty file"),
        ("noise.jpg", bytes(range(256)) * 10, "not a readable image"),
        ("notes.txt", b"hello", "unsupported file type"),
        ("noext", b"hello", "unsupported file type"),
    ],
)
def test_bad_files(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ImageError, match=reason):
        load_image(path)


def test_plain_jpeg_fast_path_gives_pillows_pixels(monkeypatch):
    """Complete upright JPEGs are decoded by libjpeg-turbo straight to BGR (faster); the pixels are the ones Pillow gives."""
    import pipeline.source.images as images

    blobs = [p.read_bytes() for p in val_images(6)]
    fast = [decode_image(b) for b in blobs]
    monkeypatch.setattr(images, "_plain_jpeg", lambda im, data, name="image": None)
    slow = [decode_image(b) for b in blobs]
    assert len(fast) == len(slow) == 6
    for a, b in zip(fast, slow):
        assert a.shape == b.shape and a.dtype == b.dtype == np.uint8
        assert np.array_equal(a, b)


def test_plain_jpeg_fast_path_only_for_complete_upright_files():
    import io

    from pipeline.source.images import _plain_jpeg

    data = val_images(1)[0].read_bytes()
    with Image.open(io.BytesIO(data)) as im:
        assert _plain_jpeg(im, data) is not None
        assert _plain_jpeg(im, data[:-2]) is None  # no end-of-image marker: Pillow says truncated
    rotated = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (64, 32), (0, 0, 255)).save(rotated, format="JPEG", exif=exif)
    with Image.open(io.BytesIO(rotated.getvalue())) as im:
        assert _plain_jpeg(im, rotated.getvalue()) is None  # EXIF rotation: Pillow's path applies it
    assert decode_image(rotated.getvalue()).shape[:2] == (64, 32)


def test_a_probed_plain_jpeg_is_decoded_without_reading_its_header_again(monkeypatch):
    """`decode_image(info=probe_image(...))`: the service read the header already; a plain JPEG goes straight to
    libjpeg-turbo, with the same pixels, and an EXIF-rotated one still takes Pillow's path."""
    import io

    import pipeline.source.images as images

    blobs = [p.read_bytes() for p in val_images(3)]
    infos = [images.probe_image(b) for b in blobs]
    expected = [decode_image(b) for b in blobs]
    rotated = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (64, 32), (0, 0, 255)).save(rotated, format="JPEG", exif=exif)
    rotated_info = images.probe_image(rotated.getvalue())
    assert all(i.plain_jpeg for i in infos) and not rotated_info.plain_jpeg

    def no_pillow(*a, **k):
        raise AssertionError("the header was parsed again")

    monkeypatch.setattr(images, "open_pil", no_pillow)
    for b, info, want in zip(blobs, infos, expected):
        assert np.array_equal(decode_image(b, info=info), want)
    monkeypatch.undo()
    assert decode_image(rotated.getvalue(), info=rotated_info).shape[:2] == (64, 32)  # rotated, by Pillow
    with pytest.raises(ImageError, match="truncated"):  # data that stops short is refused on this path too
        decode_image(_declaring(blobs[0], 7000, 7000), "lying.jpg", info=images.probe_image(_declaring(blobs[0], 7000, 7000)))


def test_truncated_jpeg(tmp_path):
    data = val_images(1)[0].read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated"):
        load_image(path)


def _declaring(data: bytes, width: int, height: int) -> bytes:
    """The JPEG with its frame header (SOF0) saying another size; the data stays what it was."""
    out = bytearray(data)
    sof = out.find(b"\xff\xc0")
    assert sof > 0
    out[sof + 5 : sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(out)


@pytest.mark.parametrize("orientation", [1, 6])  # the plain path and Pillow's (EXIF rotation)
def test_a_jpeg_whose_data_stops_before_its_declared_size_is_truncated(orientation):
    """640x640 of data declared as 7000x7000, ending with a proper end-of-image marker: libjpeg only warns and
    fills 49 MP with grey. It is as truncated as a file cut in half, and says so."""
    import io

    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (640, 640, 3), dtype=np.uint8)).save(buf, format="JPEG", exif=exif)
    good = buf.getvalue()
    assert decode_image(good).shape[:2] == (640, 640)
    lying = _declaring(good, 7000, 7000)
    assert lying.endswith(b"\xff\xd9")
    with pytest.raises(ImageError, match=r"truncated image: its data stops before the 7000x7000 pixels its header declares"):
        decode_image(lying, "lying.jpg")
    cut = good[: len(good) // 2]
    with pytest.raises(ImageError, match="truncated"):
        decode_image(cut)


def test_a_jpeg_with_extraneous_bytes_before_a_marker_still_decodes():
    """libjpeg's other warnings stay warnings: some cameras pad before the end-of-image marker."""
    data = val_images(1)[0].read_bytes()
    assert data.endswith(b"\xff\xd9")
    padded = data[:-2] + b"\x00\x00\x00" + data[-2:]
    assert np.array_equal(decode_image(padded), decode_image(data))


def test_truncated_png(tmp_path):
    buf = tmp_path / "full.png"
    cv2.imwrite(str(buf), cv2.imread(str(val_images(1)[0])))
    data = buf.read_bytes()
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated|corrupt"):
        load_image(path)


def test_missing_and_directory(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "gone.jpg")
    (tmp_path / "dir.jpg").mkdir()
    with pytest.raises(ImageError, match="not a regular file"):
        load_image(tmp_path / "dir.jpg")


def test_pixel_bomb_rejected_before_decoding(tmp_path):
    path = tmp_path / "huge.png"
    Image.new("1", (12000, 8000)).save(path)  # 96 MP, but a tiny file
    assert path.stat().st_size < 100_000
    with pytest.raises(ImageError, match="too large"):
        load_image(path)


def test_file_size_limit(tmp_path):
    path = tmp_path / "big.jpg"
    path.write_bytes(val_images(1)[0].read_bytes())
    with pytest.raises(ImageError, match="file too large"):
        load_image(path, max_bytes=1000)


def test_exif_orientation_applied():
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    import io

    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif)
    assert decode_image(buf.getvalue()).shape[:2] == (40, 20)


def test_expand_paths_keeps_every_file(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.jpg").write_bytes(b"1")
    (tmp_path / "a" / "y.txt").write_bytes(b"1")
    (tmp_path / "a" / ".hidden").write_bytes(b"1")
    single = tmp_path / "z.png"
    single.write_bytes(b"1")
    assert [p.name for p in expand_paths([tmp_path / "a", single])] == ["x.jpg", "y.txt", "z.png"]


def test_unreadable_bytes_stay_an_image_error_after_ultralytics_patched_pillow():
    import ultralytics.utils.patches  # noqa: F401  (replaces PIL.Image.open for the whole process)

    with pytest.raises(ImageError, match="not a readable image"):
        decode_image(bytes(range(256)) * 10, "noise.jpg")


# ---- formats, pixel modes, the header check, the memory estimate --------------------------------------------


def _encoded(im: Image.Image, fmt: str, **kw) -> bytes:
    import io

    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_the_pixel_limit_is_checked_from_the_header_without_decoding(monkeypatch):
    from PIL import ImageFile

    from pipeline.source.images import probe_image

    bomb = _encoded(Image.new("1", (80000, 1000)), "PNG")
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("pixels decoded"))
    with pytest.raises(ImageError, match=r"too large \(80000x1000 = 80.0 MP, limit 50.0 MP\)"):
        probe_image(bomb)
    with pytest.raises(ImageError, match="too large"):
        decode_image(bomb)
    info = probe_image(_encoded(Image.new("RGB", (64, 48)), "JPEG"))
    assert (info.format, info.mode, info.width, info.height) == ("JPEG", "RGB", 64, 48)


@pytest.mark.parametrize("fmt", ["EPS", "GIF", "PCX", "ICO", "TGA", "PPM"])
def test_only_camera_and_phone_formats_are_decoded(fmt):
    data = _encoded(Image.new("RGB", (32, 32), (10, 20, 30)), fmt)
    with pytest.raises(ImageError, match="accepted: JPEG, PNG, WebP, BMP, TIFF"):
        decode_image(data, f"x.{fmt.lower()}")


@pytest.mark.parametrize("fmt, kw", [("JPEG", {}), ("PNG", {}), ("WEBP", {"lossless": True}), ("BMP", {}), ("TIFF", {})])
def test_accepted_formats(fmt, kw):
    out = decode_image(_encoded(Image.new("RGB", (20, 10), (200, 100, 50)), fmt, **kw))
    assert out.shape == (10, 20, 3) and np.abs(out[5, 5].astype(int) - [50, 100, 200]).max() <= 3  # BGR


def test_16_bit_grey_is_scaled_to_8_bits_not_clipped_to_white():
    grey = np.tile(np.arange(0, 65536, 257, dtype=np.uint16), (4, 1))  # 0 .. 65535 in 256 steps
    im = Image.fromarray(grey)
    assert im.mode == "I;16"
    for fmt in ("PNG", "TIFF"):
        out = decode_image(_encoded(im, fmt))
        assert out.dtype == np.uint8 and (out[0, :, 0] == np.arange(256)).all(), fmt


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda: Image.fromarray(np.full((8, 8), 0.5, np.float32)), 128),  # float 0..1
        (lambda: Image.fromarray(np.full((8, 8), 30000, np.int32)), round(30000 / 257)),  # 32-bit holding 16-bit values
        (lambda: Image.new("LA", (8, 8), (0, 0)), 255),  # fully transparent: white, not the black under it
        (lambda: Image.new("RGBA", (8, 8), (0, 0, 0, 128)), 127),
        (lambda: Image.new("1", (8, 8), 1), 255),
    ],
)
def test_unusual_modes_are_converted_as_a_viewer_shows_them(make, expected):
    out = decode_image(_encoded(make(), "TIFF" if make().mode in ("F", "I") else "PNG"))
    assert out.shape == (8, 8, 3) and abs(int(out[0, 0, 0]) - expected) <= 1


def test_palette_cmyk_and_transparent_palette():
    red = decode_image(_encoded(Image.new("RGB", (8, 8), (200, 10, 10)).convert("P"), "PNG"))
    assert np.abs(red[0, 0].astype(int) - [10, 10, 200]).max() <= 12  # the web palette's nearest red
    cmyk = decode_image(_encoded(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG"))  # red in CMYK
    assert cmyk[0, 0, 2] > 200 and cmyk[0, 0, :2].max() < 60
    pal = Image.new("P", (8, 8), 0)
    pal.putpalette([0, 0, 0] * 256)
    pal.info["transparency"] = 0
    assert (decode_image(_encoded(pal, "PNG")) == 255).all()


def test_out_of_range_images_are_refused_clearly():
    with pytest.raises(ImageError, match="beyond 16 bits"):
        decode_image(_encoded(Image.fromarray(np.full((8, 8), 100000, np.int32)), "TIFF"))
    with pytest.raises(ImageError, match="negative"):
        decode_image(_encoded(Image.fromarray(np.full((8, 8), -5.0, np.float32)), "TIFF"))


PEAK_SCRIPT = """
import io, sys
import numpy as np
from PIL import Image
from pipeline.source.images import decode_image, probe_image
w, h, fmt, mode = 3000, 2000, sys.argv[1], sys.argv[2]
blocks = np.random.default_rng(0).integers(0, 255, (h // 10, w // 10, 3), dtype=np.uint8).repeat(10, 0).repeat(10, 1)
buf = io.BytesIO(); Image.fromarray(blocks).convert(mode).save(buf, format=fmt); data = buf.getvalue(); del blocks, buf
rss = lambda key: int(next(l for l in open("/proc/self/status") if l.startswith(key)).split()[1]) * 1024
open("/proc/self/clear_refs", "w").write("5")
before = rss("VmRSS:")
decode_image(data)
print(rss("VmHWM:") - before, probe_image(data).decode_bytes())
"""


@pytest.mark.slow
@pytest.mark.parametrize("fmt, mode", [("JPEG", "RGB"), ("PNG", "RGBA"), ("JPEG", "CMYK")])
def test_the_decode_memory_estimate_covers_the_real_peak(fmt, mode):
    import subprocess
    import sys

    from tests.conftest import REPO

    out = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, fmt, mode], capture_output=True, text=True, cwd=REPO, timeout=60, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    peak, estimate = map(int, out.stdout.split())
    assert peak <= estimate, f"{fmt} {mode}: decoding took {peak / 6e6:.1f} B/px, estimated {estimate / 6e6:.1f}"
    assert estimate < 2 * peak  # and is not wildly above it (the budget admits what fits)

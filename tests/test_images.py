"""Every way an image file can be bad gives an ImageError with a reason; good files decode like OpenCV."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from pipeline.images import ImageError, decode_image, expand_paths, load_image

from .conftest import val_images


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


def test_truncated_jpeg(tmp_path):
    data = val_images(1)[0].read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated"):
        load_image(path)


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

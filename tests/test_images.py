"""Decoding by content: every kind of bad or odd image file a real dataset contains."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import imagehash
import numpy as np
import pytest
from PIL import ExifTags, Image, ImageOps

from breedscope.data.images import UnreadableImage, load_rgb, open_image, to_rgb
from breedscope.data.spec import SourceImage
from breedscope.data.validate import NEAR_DUPLICATE_BITS, inspect
from tests.helpers import noise_image


def _inspect(path: Path, min_side: int = 32):
    return inspect(path.parent, SourceImage(path.name, "x"), min_side)


def test_webp_and_png_named_jpg_decode_by_content(tmp_path: Path) -> None:
    for fmt in ("WEBP", "PNG"):
        path = tmp_path / f"photo_{fmt}.jpg"
        noise_image(1).save(path, format=fmt)
        record = _inspect(path)
        assert record.reason == "", fmt
        assert (record.width, record.height) == (48, 48)


def test_ds_store_named_jpg_is_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / ".DS_Store.jpg"
    path.write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(200))
    assert _inspect(path).reason == "not an image"


def test_truncated_jpeg_is_rejected(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    noise_image(2, size=128).save(buffer, format="JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    assert _inspect(path).reason == "truncated or corrupt"


def test_zero_byte_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.touch()
    assert _inspect(path).reason == "empty file"


def test_tiny_image_is_rejected_with_the_threshold(tmp_path: Path) -> None:
    path = tmp_path / "tiny.png"
    noise_image(3, size=16).save(path)
    assert _inspect(path, min_side=32).reason == "smaller than 32 px"


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims enormous dimensions; decoding it would need gigabytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
        + struct.pack(">I", 0)
        + b"IEND"
        + struct.pack(">I", zlib.crc32(b"IEND"))
    )


def test_huge_dimension_png_header_is_a_decompression_bomb(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(100_000, 100_000))
    with pytest.raises(UnreadableImage) as caught:
        open_image(path)
    assert caught.value.reason == "decompression bomb"
    assert _inspect(path).reason == "decompression bomb"


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "RGBA", "LA", "I;16"])
def test_every_mode_becomes_8bit_rgb(tmp_path: Path, mode: str) -> None:
    base = noise_image(4, size=40)
    if mode == "I;16":
        array = np.arange(40 * 40, dtype=np.uint16).reshape(40, 40) * 40
        image = Image.fromarray(array)
        assert image.mode == "I;16"
    else:
        image = base.convert(mode)
    path = tmp_path / f"{mode.replace(';', '')}.{'tif' if mode == 'CMYK' else 'png'}"
    image.save(path)
    pixels = load_rgb(path)
    assert pixels.shape == (40, 40, 3)
    assert pixels.dtype == np.uint8
    if mode == "I;16":  # scaled to the full 8-bit range, not clipped to white
        assert pixels.min() == 0 and pixels.max() == 255
        assert len(np.unique(pixels)) > 100


def test_load_rgb_resizes_to_the_model_size(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    noise_image(5, size=50).save(path)
    assert load_rgb(path, 32).shape == (32, 32, 3)


def _xray_like(width: int = 2400, height: int = 1800) -> Image.Image:
    """A smooth, large grey picture, like a full-size chest X-ray."""
    y, x = np.mgrid[0:height, 0:width]
    grey = 127 + 60 * np.sin(x / 90) * np.cos(y / 70) + 40 * np.sin((x + y) / 300)
    return Image.fromarray(grey.astype(np.uint8))


def test_a_large_jpeg_decoded_at_reduced_scale_keeps_its_pixels(tmp_path: Path) -> None:
    # Decoding a 2,400 x 1,800 JPEG for a 224 px model takes its 1/4 scale, which must give
    # (almost) the pixels of a full decode and a resize.
    path = tmp_path / "xray.jpeg"
    _xray_like().save(path, quality=92)

    reduced = load_rgb(path, 224)
    full = np.asarray(Image.open(path).convert("RGB").resize((224, 224), Image.Resampling.BILINEAR))

    assert reduced.shape == (224, 224, 3)
    assert np.abs(reduced.astype(int) - full.astype(int)).mean() < 1.0
    assert open_image(path, reduce_for=224).size == (600, 450)  # 1/4 scale, not below 448


def test_validation_of_a_large_rotated_jpeg_records_its_full_shown_size(tmp_path: Path) -> None:
    # Stored 2,400 x 1,800 with EXIF orientation 6 (a quarter turn): shown 1,800 wide, 2,400 high.
    # Validation hashes a reduced decode, but the record keeps the real size, and the hash stays
    # within near-duplicate distance of a full decode's.
    path = tmp_path / "xray.jpeg"
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    _xray_like().save(path, quality=92, exif=exif)

    record = _inspect(path)

    assert record.reason == ""
    assert (record.width, record.height) == (1800, 2400)
    full = imagehash.phash(to_rgb(open_image(path)))
    assert imagehash.hex_to_hash(record.phash) - full <= NEAR_DUPLICATE_BITS


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_load_rgb_equals_turn_then_resize_for_every_orientation(tmp_path: Path, orientation: int) -> None:
    # The features cache trusts DECODER_VERSION: decoding must give exactly the pixels of the
    # reference recipe (EXIF turn, RGB, bilinear resize), whatever shortcut it takes.
    path = tmp_path / "photo.jpg"
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    noise_image(6, size=90).resize((120, 90)).save(path, quality=90, exif=exif)

    reference = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    expected = np.asarray(reference.resize((32, 32), Image.Resampling.BILINEAR))

    unturned = np.asarray(Image.open(path).convert("RGB"))
    assert (orientation == 1) == np.array_equal(np.asarray(reference), unturned)  # a turn to take
    np.testing.assert_array_equal(load_rgb(path, 32), expected)
    np.testing.assert_array_equal(load_rgb(path), np.asarray(reference))  # and at full size

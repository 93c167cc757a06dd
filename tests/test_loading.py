"""Loading images for training: decoded once into a cache of ``.npy`` files, which is rebuilt
where it is damaged, never fatal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from breedscope.data.manifest import Row
from breedscope.features.loading import ImageLoader
from tests.helpers import shape_image


@pytest.mark.parametrize("damage", [b"", b"\x93NUMPY garbage", "another size"])
def test_a_damaged_decoded_image_is_decoded_again(tmp_path: Path, damage: bytes | str) -> None:
    shape_image(1, seed=4, size=40).save(tmp_path / "image.png")
    row = Row("image.png", "a", "train", "image.png", "ab" * 32, "0" * 16, 40, 40, "")
    loader = ImageLoader(tmp_path, 32, tmp_path / "decoded")
    expected = loader(row)
    cached = tmp_path / "decoded" / "ab" / f"{'ab' * 32}.npy"
    assert cached.is_file()
    if isinstance(damage, bytes):
        cached.write_bytes(damage)  # cut short by a full disk, or overwritten
    else:
        np.save(cached, np.zeros((16, 16, 3), np.uint8))
    np.testing.assert_array_equal(loader(row), expected)
    np.testing.assert_array_equal(np.load(cached), expected)  # and the cache is whole again

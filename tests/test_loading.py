"""Loading images for training (features/loading.py): epoch order and oversampling from the seed;
decoded once into a cache of ``.npy`` files, which is rebuilt where it is damaged, never fatal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from breedscope.data.manifest import Row
from breedscope.features import loading
from breedscope.features.loading import ImageLoader
from tests.helpers import noise_image, shape_image


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


def test_epoch_order_is_a_pure_function_of_seed_and_epoch() -> None:
    labels = np.array([0] * 10 + [1] * 5)
    first = loading.epoch_order(labels, seed=3, epoch=2, oversample=False)
    assert np.array_equal(first, loading.epoch_order(labels, seed=3, epoch=2, oversample=False))
    assert not np.array_equal(first, loading.epoch_order(labels, seed=3, epoch=3, oversample=False))
    assert sorted(first) == list(range(15))


def test_oversampling_evens_out_the_classes_every_epoch() -> None:
    labels = np.array([0] * 12 + [1] * 3 + [2] * 6)
    order = loading.epoch_order(labels, seed=0, epoch=0, oversample=True)
    assert np.bincount(labels[order]).tolist() == [12, 12, 12]
    assert set(order[labels[order] == 1]) == {12, 13, 14}


def test_decode_cache_decodes_each_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    noise_image(1, 60).save(tmp_path / "a.png")
    row = Row("a.png", "x", "train", "a.png", "ab" * 32, "", 60, 60, "")
    loader = loading.ImageLoader(tmp_path, 32, cache_dir=tmp_path / "cache")
    first = loader(row)
    assert (tmp_path / "cache" / "ab" / f"{'ab' * 32}.npy").is_file()
    monkeypatch.setattr(loading, "load_rgb", lambda *a: pytest.fail("decoded twice"))
    assert np.array_equal(loader(row), first)
    assert first.shape == (32, 32, 3)


def test_a_vanished_image_is_a_clear_error(tmp_path: Path) -> None:
    row = Row("gone.png", "x", "train", "gone.png", "cd" * 32, "", 60, 60, "")
    with pytest.raises(loading.DataError, match=r"gone\.png changed or vanished since validation"):
        loading.ImageLoader(tmp_path, 32)(row)

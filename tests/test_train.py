"""Feeding the trainer: epoch order, oversampling, class weights, batches for replicas, decode cache;
and Grad-CAM on a trained classifier's layout."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from breedscope import batching, loading, train
from breedscope.manifest import Row
from tests.helpers import noise_image


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


def test_class_weights_are_balanced() -> None:
    weights = train.class_weights(np.array([0] * 30 + [1] * 10), 3)
    assert weights[0] == pytest.approx(40 / (2 * 30))
    assert weights[1] == pytest.approx(40 / (2 * 10))
    assert weights[2] == 1.0  # absent from training: neutral


@pytest.mark.parametrize(
    "count,size,replicas,drop,expected",
    [
        (25, 8, 1, False, [8, 8, 8, 1]),
        (25, 8, 2, False, [8, 8, 9]),  # a batch of 1 cannot feed two replicas: merged
        (25, 8, 2, True, [8, 8, 8]),  # training: cut to a multiple of the replicas
        (27, 8, 2, True, [8, 8, 8, 2]),
    ],
)
def test_batch_slices(count: int, size: int, replicas: int, drop: bool, expected: list[int]) -> None:
    slices = batching.batch_slices(count, size, replicas, drop_remainder=drop)
    assert [s.stop - s.start for s in slices] == expected
    assert slices[0].start == 0 and all(a.stop == b.start for a, b in itertools.pairwise(slices))


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


def test_gradcam_explains_the_models_own_prediction() -> None:
    from breedscope.config import ModelConfig
    from breedscope.explain import gradcam
    from breedscope.model import assemble, build_feature_extractor, build_head
    from breedscope.plugins import registry

    config = ModelConfig(weights="none", alpha=0.35, image_size=32, head=[8], dropout=0.0)
    extractor = build_feature_extractor(registry().pick("backbones", "mobilenet_v2"), config)
    model = assemble(extractor, build_head(extractor.output_shape[-1], 3, config))
    images = np.random.default_rng(0).uniform(0, 255, size=(4, 32, 32, 3)).astype(np.float32)

    heat, probabilities = gradcam(model, images)

    np.testing.assert_allclose(probabilities, np.asarray(model(images, training=False)), atol=1e-5)
    assert heat.shape == (4, 32, 32)
    assert heat.min() >= 0 and heat.max() <= 1 + 1e-6

"""The backbone's runtime (features/runtime.py): LiteRT checked against Keras, a damaged conversion redone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from breedscope.features import runtime


def _small_extractor(image_size: int):
    """A small from-scratch MobileNetV2 extractor, for LiteRT's conversion (skips without LiteRT)."""
    if not runtime.litert_available():
        pytest.skip("ai-edge-litert is not installed on this platform; features come from Keras")
    from breedscope.config.settings import ModelConfig
    from breedscope.model.backbone import build_feature_extractor
    from breedscope.plugins import registry

    config = ModelConfig(weights="none", alpha=0.35, image_size=image_size)
    return build_feature_extractor(registry().pick("backbones", "mobilenet_v2"), config)


def test_litert_features_agree_with_keras_within_the_stated_tolerance(tmp_path: Path) -> None:
    extractor = _small_extractor(64)
    forward = runtime.choose(extractor, "auto", tmp_path, 64)
    assert forward.runtime == "litert" and forward.check is not None
    assert runtime.BACKBONE.model_file(tmp_path).is_file() and runtime.BACKBONE.check_file(tmp_path).is_file()
    # Other images than the check's, and an odd batch length (padding): within the tolerance.
    images = np.random.default_rng(1).uniform(0, 255, (11, 64, 64, 3)).astype(np.float32)
    difference = np.abs(forward(images) - runtime.keras_forward(extractor)(images)).max()
    assert difference <= runtime.TOLERANCE
    assert forward.check.max_abs_difference <= runtime.TOLERANCE
    # Built once: a second choice reuses the converted file.
    modified = runtime.BACKBONE.model_file(tmp_path).stat().st_mtime_ns
    assert runtime.choose(extractor, "auto", tmp_path, 64).runtime == "litert"
    assert runtime.BACKBONE.model_file(tmp_path).stat().st_mtime_ns == modified
    assert runtime.choose(extractor, "keras", tmp_path, 64).runtime == "keras"


def test_a_damaged_converted_backbone_is_converted_again(tmp_path: Path) -> None:
    # A truncated backbone.tflite used to end the run in "Unexpected error".
    extractor = _small_extractor(32)
    first = runtime.choose(extractor, "auto", tmp_path, 32)
    images = np.random.default_rng(2).uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)
    expected = first(images)
    model_file = runtime.BACKBONE.model_file(tmp_path)
    model_file.write_bytes(model_file.read_bytes()[: model_file.stat().st_size // 3])
    assert runtime.already_converted(tmp_path, 32, "auto") is None  # not used ahead of TensorFlow
    again = runtime.choose(extractor, "auto", tmp_path, 32)
    assert again.runtime == "litert"
    np.testing.assert_array_equal(again(images), expected)

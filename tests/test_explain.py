"""Grad-CAM (evaluation/explain.py) on a trained classifier's layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from breedscope.features import runtime


def test_gradcam_explains_the_models_own_prediction() -> None:
    from breedscope.config.settings import ModelConfig
    from breedscope.evaluation.explain import gradcam
    from breedscope.model.backbone import build_feature_extractor
    from breedscope.model.classifier import assemble, build_head
    from breedscope.plugins import registry

    config = ModelConfig(weights="none", alpha=0.35, image_size=32, head=[8], dropout=0.0)
    extractor = build_feature_extractor(registry().pick("backbones", "mobilenet_v2"), config)
    model = assemble(extractor, build_head(extractor.output_shape[-1], 3, config))
    images = np.random.default_rng(0).uniform(0, 255, size=(4, 32, 32, 3)).astype(np.float32)

    heat, probabilities = gradcam(model, images)

    np.testing.assert_allclose(probabilities, np.asarray(model(images, training=False)), atol=1e-5)
    assert heat.shape == (4, 32, 32)
    assert heat.min() >= 0 and heat.max() <= 1 + 1e-6


def test_gradcam_on_litert_feature_maps_equals_gradcam_through_keras(
    tmp_path: Path, keras_home: Path
) -> None:
    # A frozen run's Grad-CAM takes the backbone's maps from the converted backbone that made
    # its features, instead of calling the Keras backbone: the same heat maps and predictions.
    # ImageNet weights: a random backbone's maps hardly depend on the image, so would not tell.
    if not runtime.litert_available():
        pytest.skip("ai-edge-litert is not installed on this platform; features come from Keras")
    from breedscope.config.settings import ModelConfig
    from breedscope.evaluation.explain import gradcam
    from breedscope.model.backbone import build_feature_extractor
    from breedscope.model.classifier import assemble, build_head
    from breedscope.plugins import registry
    from tests.helpers import WEIGHTS, shape_image

    if not WEIGHTS.is_file():
        pytest.skip(f"ImageNet weights {WEIGHTS} are absent (they sit in ../shared/weights in CI)")
    # The file itself: Keras reads KERAS_HOME once per process, at import.
    config = ModelConfig(weights=str(WEIGHTS), head=[16], dropout=0.0)  # MobileNetV2 at 224 px
    extractor = build_feature_extractor(registry().pick("backbones", "mobilenet_v2"), config)
    forward = runtime.choose(extractor, "litert", tmp_path, 224)
    assert forward.maps is not None
    model = assemble(extractor, build_head(extractor.output_shape[-1], 3, config))
    images = np.stack([np.asarray(shape_image(i % 2, seed=i, size=224), np.float32) for i in range(3)])

    keras_heat, keras_probabilities = gradcam(model, images)
    heat, probabilities = gradcam(model, images, forward.maps)

    np.testing.assert_allclose(probabilities, keras_probabilities, atol=1e-4)
    assert heat.shape == keras_heat.shape == (3, 224, 224)
    assert np.abs(heat - keras_heat).max() < 1e-3
    # The comparison can tell: another image's maps give another heat map.
    other, _ = gradcam(model, images, lambda pixels: forward.maps(pixels[::-1]))
    assert np.abs(other[0] - keras_heat[0]).max() > 0.1

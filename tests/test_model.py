"""The model (model/): the backbone behind its preprocessing, the saved file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from breedscope.features import loading
from breedscope.training import trainer as train


def test_the_backbone_is_found_behind_a_preprocessing_model() -> None:
    # densenet121's preprocessing is itself a Keras model. Grad-CAM and fine-tuning must take
    # the backbone (the model the pooling reads), not the preprocessing before it.
    from breedscope.config.settings import ModelConfig
    from breedscope.evaluation.explain import gradcam, map_side
    from breedscope.model.backbone import build_feature_extractor
    from breedscope.model.classifier import assemble, build_head, unfreeze_top
    from breedscope.plugins import registry

    config = ModelConfig(backbone="densenet121", weights="none", image_size=64, head=[8], dropout=0.0)
    extractor = build_feature_extractor(registry().pick("backbones", "densenet121"), config)
    model = assemble(extractor, build_head(extractor.output_shape[-1], 3, config))
    images = np.random.default_rng(0).uniform(0, 255, size=(2, 64, 64, 3)).astype(np.float32)

    assert map_side(model) == 2  # densenet121's last block at 64 px, not the 64 px input
    heat, _ = gradcam(model, images)
    assert heat.shape == (2, 64, 64)
    # The top four layers with weights: two convolutions, two BatchNorms (left frozen).
    assert unfreeze_top(model, 4) == 2
    densenet = model.get_layer("densenet121")
    assert [layer.name for layer in densenet.layers if layer.weights and layer.trainable] == [
        "conv5_block16_1_conv",
        "conv5_block16_2_conv",
    ]


def test_a_model_saved_with_the_skipsets_cached_is_the_file_keras_writes(tmp_path: Path) -> None:
    # model.save_model makes Keras' per-save attribute lists a cache (Keras looks them up under
    # another name than it stores them); the file must be exactly the one Keras writes alone
    # (its own thread has none cached), and load back to the same predictions.
    import io
    import threading
    import zipfile

    import keras
    from keras.src.saving import saving_lib

    from breedscope.model.classifier import load_model, save_model

    keras.utils.set_random_seed(3)
    inputs = keras.Input((6,))
    hidden = keras.layers.Dropout(0.2)(keras.layers.Dense(8, "relu")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2, "softmax")(hidden))
    train._compile(model, 1e-2)
    x = np.random.default_rng(0).normal(size=(16, 6)).astype(np.float32)
    model.fit(x, loading.one_hot(np.arange(16) % 2, 2), epochs=1, verbose=0)  # optimizer state too

    alone = io.BytesIO()
    saver = threading.Thread(target=saving_lib.save_model, args=(model, alone))
    saver.start()
    saver.join()
    save_model(model, tmp_path / "ours.keras")
    ours = zipfile.ZipFile(tmp_path / "ours.keras")
    theirs = zipfile.ZipFile(alone)
    assert ours.namelist() == theirs.namelist()
    for name in ours.namelist():
        if name != "metadata.json":  # the date it was saved
            assert ours.read(name) == theirs.read(name), name
    np.testing.assert_array_equal(
        load_model(tmp_path / "ours.keras").predict(x, verbose=0), model.predict(x, verbose=0)
    )

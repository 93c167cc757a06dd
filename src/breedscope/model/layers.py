"""Keras layers breedscope puts into saved models. Importing this module registers them, so
``keras.models.load_model`` can read a model that uses them."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="breedscope")
class ReverseChannelsAndCenter(keras.layers.Layer):
    """RGB [0, 255] to "caffe" inputs: BGR order, ImageNet channel means subtracted (ResNet50)."""

    def __init__(self, mean_bgr: tuple[float, float, float] = (103.939, 116.779, 123.68), **kwargs) -> None:
        super().__init__(**kwargs)
        self.mean_bgr = tuple(float(v) for v in mean_bgr)

    def call(self, inputs):
        return ops.flip(inputs, axis=-1) - ops.convert_to_tensor(self.mean_bgr, dtype=inputs.dtype)

    def get_config(self) -> dict:
        return {**super().get_config(), "mean_bgr": list(self.mean_bgr)}

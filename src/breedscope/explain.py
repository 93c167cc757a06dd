"""Grad-CAM class-activation maps on the backbone's last convolutional block.

The classifier is ``input → preprocessing → backbone → pool → head`` (see :mod:`breedscope.model`),
so the backbone's output *is* the last convolutional block, whatever the backbone plugin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import keras


def _parts(model: keras.Model) -> tuple[list, keras.Model, list]:
    """Split the classifier into (layers before the backbone, the backbone, layers after it)."""
    import keras

    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    index = next(
        i for i, layer in enumerate(layers) if isinstance(layer, keras.Model) and layer.name != "head"
    )
    return layers[:index], layers[index], layers[index + 1 :]


def gradcam(model: keras.Model, images: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Heat maps in [0, 1], one per image, for the given class indices, at the input's size."""
    import tensorflow as tf

    before, backbone, after = _parts(model)
    x = tf.convert_to_tensor(images, dtype=tf.float32)
    for layer in before:
        x = layer(x)
    with tf.GradientTape() as tape:
        features = backbone(x, training=False)
        tape.watch(features)
        y = features
        for layer in after:
            y = layer(y, training=False)
        scores = tf.gather(y, classes, axis=1, batch_dims=1)
    gradients = tape.gradient(scores, features)
    weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
    cams = tf.nn.relu(tf.reduce_sum(weights * features, axis=-1))
    cams = cams / (tf.reduce_max(cams, axis=(1, 2), keepdims=True) + 1e-8)
    size = images.shape[1:3]
    return tf.image.resize(cams[..., None], size, method="bilinear")[..., 0].numpy()


def overlay(image: np.ndarray, heat: np.ndarray, strength: float = 0.45) -> np.ndarray:
    """The image with its heat map blended on top (matplotlib's 'jet' colours)."""
    from matplotlib import colormaps

    coloured = colormaps["jet"](heat)[..., :3] * 255.0
    return (image * (1 - strength) + coloured * strength).clip(0, 255).astype(np.uint8)

"""Grad-CAM class-activation maps on the backbone's last convolutional block.

The classifier is ``input → preprocessing → backbone → pool → head`` (see :mod:`breedscope.model.classifier`),
so the backbone's output *is* the last convolutional block, whatever the backbone plugin.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from breedscope.model.classifier import split_classifier

if TYPE_CHECKING:
    import keras


MIN_MAP_SIDE = 4  # a coarser map (MobileNetV2 at 32-127 px: 1x1 to 3x3) cannot show where


def map_side(model: keras.Model) -> int:
    """The side of the backbone's last feature map, in cells (7 for MobileNetV2 at 224 px)."""
    _, backbone, _ = split_classifier(model)
    return int(backbone.output_shape[1])


def gradcam(
    model: keras.Model, images: np.ndarray, feature_maps: Callable[[np.ndarray], np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Heat maps in [0, 1] for each image's predicted class, at the input's size, and the
    class probabilities the maps explain.

    ``feature_maps`` (pixels in, the backbone's last maps out) stands in for the model's
    preprocessing and backbone when they are frozen and another runtime has them loaded
    already (LiteRT's converted backbone, see :class:`breedscope.features.runtime.Forward`): the
    Keras backbone's first call, about half a second, is then not needed.
    """
    import tensorflow as tf

    before, backbone, after = split_classifier(model)
    if feature_maps is not None:
        features = tf.convert_to_tensor(feature_maps(images.astype(np.float32)))
    else:
        x = tf.convert_to_tensor(images, dtype=tf.float32)
        for layer in before:
            x = layer(x)
        # Only the layers after the backbone need gradients, so the backbone runs once as a
        # compiled graph (about half the time of an eager pass on a CPU) on one device,
        # whatever strategy trained it.
        features = tf.function(lambda pixels: backbone(pixels, training=False), autograph=False)(x)
    with tf.GradientTape() as tape:
        tape.watch(features)
        probabilities = features
        for layer in after:
            probabilities = layer(probabilities, training=False)
        predicted = tf.argmax(probabilities, axis=1)
        scores = tf.gather(probabilities, predicted, axis=1, batch_dims=1)
    gradients = tape.gradient(scores, features)
    weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
    cams = tf.nn.relu(tf.reduce_sum(weights * features, axis=-1))
    cams = cams / (tf.reduce_max(cams, axis=(1, 2), keepdims=True) + 1e-8)
    heat = tf.image.resize(cams[..., None], images.shape[1:3], method="bilinear")[..., 0]
    return heat.numpy(), probabilities.numpy()


def overlay(image: np.ndarray, heat: np.ndarray, strength: float = 0.45) -> np.ndarray:
    """The image with its heat map blended on top (matplotlib's 'jet' colours)."""
    from matplotlib import colormaps

    coloured = colormaps["jet"](heat)[..., :3] * 255.0
    return (image * (1 - strength) + coloured * strength).clip(0, 255).astype(np.uint8)

"""The model: a backbone (from a plugin) with its own preprocessing, pooled, and a dense head.

The saved model takes RGB pixels in [0, 255]; preprocessing lives inside it, so predicting,
exporting and the feature cache all see exactly the same inputs.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from breedscope.atomic import atomic_path
from breedscope.config import ModelConfig
from breedscope.errors import BreedscopeError, ConfigError, DataError

if TYPE_CHECKING:
    import keras


@dataclass(frozen=True)
class BackboneSpec:
    """A convolutional backbone, as a plugin registers it.

    Attributes:
        name: the value of ``model.backbone``.
        build: ``build(image_size, alpha, weights)`` returns a Keras model without its top,
            taking preprocessed pixels; ``weights`` is ``"imagenet"``, ``None`` or a file path.
        preprocessing: ``preprocessing(pixel_range)`` returns a Keras layer that maps RGB
            [0, 255] to what ``build``'s model expects.
        weights_file: the file name Keras caches ImageNet weights under, for error messages.
    """

    name: str
    description: str
    build: Callable[[int, float, str | None], keras.Model]
    preprocessing: Callable[[str], keras.layers.Layer]
    weights_file: Callable[[int, float], str] = lambda size, alpha: "(see Keras applications)"


def weights_argument(weights: str) -> str | None:
    """``model.weights`` as Keras takes it: ``None``, ``"imagenet"`` or an existing file's path."""
    if weights == "none":
        return None
    if weights == "imagenet":
        return "imagenet"
    if not Path(weights).expanduser().is_file():
        raise BreedscopeError(f"model.weights: the weights file {weights} does not exist.")
    return str(Path(weights).expanduser())


def build_feature_extractor(spec: BackboneSpec, config: ModelConfig) -> keras.Model:
    """RGB [0, 255] in, pooled backbone features out."""
    import keras

    weights = weights_argument(config.weights)
    try:
        base = spec.build(config.image_size, config.alpha, weights)
    except Exception as exc:
        if isinstance(exc, BreedscopeError) or weights is None:
            raise
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if weights != "imagenet":
            raise BreedscopeError(
                f"model.weights: {weights} could not be loaded into {spec.name} at alpha {config.alpha} "
                f"and {config.image_size} px ({detail[:160]}); pass a Keras weights file (.h5) made "
                "for this backbone and size, 'imagenet' or 'none'."
            ) from exc
        if isinstance(exc, ValueError):  # Keras refuses the request itself: no such weights exist
            raise ConfigError(
                f"{spec.name} has no ImageNet weights at alpha {config.alpha} and {config.image_size} px "
                f"({detail[:200]}); choose a model.alpha and model.image_size they exist for, or "
                "--weights none to train from scratch."
            ) from exc
        file_name = spec.weights_file(config.image_size, config.alpha)
        raise BreedscopeError(
            f"The ImageNet weights for {spec.name} could not be downloaded ({exc}). Either connect "
            f"to the internet once, pass a weights file with --weights PATH, or put {file_name} "
            "in $KERAS_HOME/models/ (default ~/.keras/models/)."
        ) from exc
    base.trainable = config.train_base
    if config.train_base and weights is None:
        # Trained from scratch, BatchNorm's moving statistics must settle within a short run;
        # Keras applications use momentum 0.999, which takes thousands of steps.
        for layer in base.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = 0.9
    inputs = keras.Input((config.image_size, config.image_size, 3), name="rgb_0_255")
    x = spec.preprocessing(config.pixel_range)(inputs)
    # training=False keeps BatchNorm in inference mode even when the base is later unfrozen.
    x = base(x, training=False if not config.train_base else None)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, x, name=f"{spec.name}_features")


def build_head(feature_dim: int, n_classes: int, config: ModelConfig) -> keras.Model:
    """Pooled features in, class probabilities out: ``Dense(width) ReLU, Dropout`` per layer."""
    import keras

    inputs = keras.Input((feature_dim,), name="features")
    x = inputs
    for index, (width, rate) in enumerate(zip(config.head, config.dropout_rates(), strict=True)):
        x = keras.layers.Dense(width, activation="relu", name=f"head_dense_{index}")(x)
        if rate > 0:
            x = keras.layers.Dropout(rate, name=f"head_dropout_{index}")(x)
    # float32 output even under mixed precision: softmax in float16 loses small probabilities.
    outputs = keras.layers.Dense(n_classes, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="head")


def split_classifier(model: keras.Model) -> tuple[list, keras.Model, list]:
    """A classifier's (layers before the backbone, the backbone, layers after it).

    Every classifier is ``input → preprocessing → backbone → pool → head``
    (:func:`build_feature_extractor`, :func:`assemble`), in that order in ``model.layers``, so
    the backbone is the layer the pooling reads. (Not "the first nested model": a plugin's
    preprocessing may be a Keras model itself, as densenet121's is.)
    """
    import keras

    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    index = [layer.name for layer in layers].index("pool") - 1
    return layers[:index], layers[index], layers[index + 1 :]


def unfreeze_top(model: keras.Model, layers: int) -> int:
    """Make the top ``layers`` layers of the classifier's backbone trainable, BatchNorm excepted
    (its statistics stay frozen and it keeps running in inference mode). Returns how many."""
    import keras

    _, backbone, _ = split_classifier(model)
    backbone.trainable = True
    for layer in backbone.layers:
        layer.trainable = False
    chosen = [layer for layer in backbone.layers if layer.weights][-layers:]
    for layer in chosen:
        if not isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = True
    return sum(1 for layer in chosen if layer.trainable)


def save_model(model: keras.Model, target: Path) -> None:
    """Save ``model`` (architecture, weights, optimizer state) as a ``.keras`` file, atomically.

    The model is serialised in memory first and then written by one plain write: on a full disk
    that write fails cleanly, where Keras writing the file itself leaves h5py objects bound to a
    half-written file, which report errors at exit and can crash the interpreter. ``model.save``
    takes only paths, hence Keras' saving library.
    """
    from keras.src.saving import saving_lib

    _cache_keras_attribute_skipsets()
    buffer = io.BytesIO()
    saving_lib.save_model(model, buffer)
    with atomic_path(target) as tmp:
        tmp.write_bytes(buffer.getbuffer())


def _cache_keras_attribute_skipsets() -> None:
    """Make Keras' saving cache what it means to cache (half the time of a MobileNetV2 save,
    three fifths of a head checkpoint's).

    For every layer, optimizer and metric it saves, Keras' ``saving_lib.get_attr_skipset`` builds
    a throwaway object of the base class to list the attributes not to walk. It stores the list
    in its (per-thread) global state under ``saving_attr_skipset_<type>`` but looks it up under
    ``saving_attr_skiplist_<type>`` (Keras 3.15), so it never finds it. Storing each list under
    the name it is looked up by changes nothing in the file. Harmless once Keras reads its key.
    """
    from keras.src.backend.common import global_state
    from keras.src.saving import saving_lib

    for kind in ("Operation", "Layer", "Functional", "Sequential", "Metric", "Optimizer", "Loss"):
        key = f"saving_attr_skiplist_{kind}"
        if global_state.get_global_attribute(key) is None:
            global_state.set_global_attribute(key, saving_lib.get_attr_skipset(kind))


def save_weights(model: keras.Model, target: Path) -> None:
    """``model``'s weights in one ``.npz`` file, written atomically (see :func:`save_model`)."""
    buffer = io.BytesIO()
    np.savez(buffer, *model.get_weights())
    with atomic_path(target) as tmp:
        tmp.write_bytes(buffer.getbuffer())


def load_weights(model: keras.Model, source: Path) -> None:
    with np.load(source) as stored:
        model.set_weights([stored[f"arr_{index}"] for index in range(len(stored.files))])


def load_model(path: Path, classes: int | None = None) -> keras.Model:
    """Load a saved classifier, with breedscope's own layers registered first; ``classes``: the
    number of outputs it must have.

    A run directory may come from someone else, so the file is input: Keras' safe mode refuses
    layers that would run code or load files from elsewhere (``Lambda``, ``TFSMLayer``), and
    anything that is not such a model, or predicts another number of classes, is one sentence."""
    import keras

    import breedscope.layers  # noqa: F401  (registers the layers for deserialisation)

    try:
        model = keras.models.load_model(path, safe_mode=True)
    except Exception as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DataError(
            f"{path} is not a model breedscope can load ({reason[:200]}); it was damaged or not written "
            "by breedscope: restore it from the run's owner, or train the run again."
        ) from exc
    outputs = model.output_shape[-1] if isinstance(model.output_shape, tuple) else None
    if classes is not None and outputs != classes:
        raise DataError(
            f"{path} predicts {outputs} classes, but its run has {classes}: the model does not belong "
            "to this run directory; restore the run's own model, or train the run again."
        )
    return model


def assemble(extractor: keras.Model, head: keras.Model) -> keras.Model:
    """The whole classifier, RGB [0, 255] in, probabilities out."""
    import keras

    return keras.Model(extractor.input, head(extractor.output), name="classifier")

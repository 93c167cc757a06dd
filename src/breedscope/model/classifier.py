"""The classifier: a dense head on the backbone's features, the whole model assembled from the
two, and the Keras files they are saved in and loaded from."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from breedscope.config.settings import ModelConfig
from breedscope.core.atomic import atomic_path
from breedscope.core.errors import DataError

if TYPE_CHECKING:
    import keras


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

    import breedscope.model.layers  # noqa: F401  (registers the layers for deserialisation)

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

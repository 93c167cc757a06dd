"""Training epochs written out with ``strategy.run``, for strategies ``model.fit`` cannot drive.

Keras 3's ``model.fit`` fails under ``MultiWorkerMirroredStrategy`` before its first step
(keras-team/keras#20585: it reduces the first input batch across workers, eagerly). The
strategy itself works: this loop uses only its public API. Each global batch is the one
``model.fit`` would see on one machine; every replica (one per worker, or per GPU of a worker)
takes its share of it, and gradients are summed across them. The loss and the reported metrics
follow ``model.fit``'s: categorical cross-entropy over the global batch with the class weights as
sample weights; accuracy (a plain metric, not a ``weighted_metric``) and validation without them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from breedscope.core.errors import BreedscopeError

if TYPE_CHECKING:
    import keras
    import tensorflow as tf


def _arrays(data: object) -> Iterable[tuple[np.ndarray, np.ndarray]]:
    """The (x, y) batches of a Keras ``PyDataset`` (indexed) or a ``tf.data`` pipeline."""
    batches = (data[i] for i in range(len(data))) if hasattr(data, "__getitem__") else data
    for batch in batches:
        yield np.asarray(batch[0], dtype=np.float32), np.asarray(batch[1], dtype=np.float32)


def _lost_peer_errors() -> tuple[type[Exception], ...]:
    import tensorflow as tf

    errors = tf.errors
    return (errors.UnavailableError, errors.AbortedError, errors.CancelledError, errors.DeadlineExceededError)


class CustomLoop:
    """One epoch at a time of ``model``'s training under ``strategy`` (model and optimizer made
    in its scope)."""

    def __init__(
        self, model: keras.Model, strategy: tf.distribute.Strategy, class_weight: dict[int, float] | None
    ) -> None:
        import tensorflow as tf

        self.model, self.strategy = model, strategy
        n_classes = int(model.output_shape[-1])
        weights = [1.0] * n_classes if class_weight is None else [class_weight[c] for c in range(n_classes)]
        self.class_weights = np.asarray(weights, dtype=np.float32)
        with strategy.scope():  # the optimizer's slots are created here, not inside a replica
            model.optimizer.build(model.trainable_variables)
        # The whole step is one graph, so the gradients' all-reduce happens inside it.
        self._step = tf.function(self._step_sums, reduce_retracing=True)

    def _step_sums(self, parts: tuple, global_size: tf.Tensor) -> list[tf.Tensor]:
        strategy = self.strategy
        sums = strategy.run(self._replica_step_sums, args=(*parts, global_size))
        return [strategy.reduce("SUM", value, axis=None) for value in sums]

    def _replica_step_sums(self, x: tf.Tensor, y: tf.Tensor, w: tf.Tensor, global_size: tf.Tensor) -> tuple:
        """One replica's share of a step: apply the gradients of its part of the global mean loss."""
        import keras
        import tensorflow as tf

        model = self.model
        with tf.GradientTape() as tape:
            probabilities = model(x, training=True)
            per_example = keras.losses.categorical_crossentropy(y, probabilities) * w
            loss = tf.reduce_sum(per_example) / global_size
            if model.losses:  # regularisers count once over the replicas
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
            loss = model.optimizer.scale_loss(loss)  # mixed precision on GPUs; as is otherwise
        variables = model.trainable_variables
        gradients = tape.gradient(loss, variables)
        model.optimizer.apply_gradients(zip(gradients, variables, strict=True))
        correct = tf.cast(tf.argmax(probabilities, -1) == tf.argmax(y, -1), tf.float32)
        return tf.reduce_sum(per_example), tf.reduce_sum(correct)

    def _train_step(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        w = self.class_weights[np.argmax(y, axis=-1)]

        def share(context: tf.distribute.experimental.ValueContext) -> tuple:
            shares = np.array_split(np.arange(len(x)), context.num_replicas_in_sync)
            part = shares[context.replica_id_in_sync_group]
            return tf.constant(x[part]), tf.constant(y[part]), tf.constant(w[part])

        parts = self.strategy.experimental_distribute_values_from_function(share)
        try:
            sums = self._step(parts, tf.constant(float(len(x))))
        except _lost_peer_errors() as exc:  # what a collective operation raises when a peer is gone
            found = re.search(r"aborted by: ([^\n]+)", str(exc.message))  # the cause, past the graph's trace
            reason = found.group(1).strip() if found else type(exc).__name__
            raise BreedscopeError(
                f"A worker of the cluster stopped or cannot be reached ({reason}); start the run again "
                "on every machine."
            ) from None
        return np.array([float(value) for value in sums])

    def _evaluate(self, batches: object) -> dict[str, float]:
        """Validation on this worker alone: every worker holds the same weights and data."""
        import keras

        loss = correct = count = 0.0
        for x, y in _arrays(batches):
            probabilities = self.model(x, training=False)
            loss += float(np.sum(keras.losses.categorical_crossentropy(y, probabilities)))
            correct += float(np.sum(np.argmax(probabilities, -1) == np.argmax(y, -1)))
            count += len(x)
        return {"val_loss": loss / count, "val_accuracy": correct / count}

    def epoch(self, batches: object, validation: object | None) -> dict[str, float]:
        """Train on every batch of ``batches`` once; the epoch's logs, named as ``model.fit``'s."""
        sums = np.zeros(2)
        count = 0
        for x, y in _arrays(batches):
            sums += self._train_step(x, y)
            count += len(x)
        logs = {"loss": sums[0] / count, "accuracy": sums[1] / count}
        return logs | (self._evaluate(validation) if validation is not None else {})

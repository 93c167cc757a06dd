"""The custom training loop (training/custom_loop.py) trains exactly as model.fit does."""

from __future__ import annotations

import numpy as np
import pytest

from breedscope.features import loading
from breedscope.training import trainer as train


@pytest.mark.parametrize("class_weight", [None, {0: 2.0, 1: 0.5, 2: 1.0}])
def test_the_custom_loop_trains_exactly_as_model_fit_does(class_weight: dict | None) -> None:
    # Several workers train with the custom loop (model.fit cannot drive them); on one device it
    # must take the very steps model.fit takes and report the same epoch figures.
    import keras
    import tensorflow as tf

    from breedscope.training.custom_loop import CustomLoop

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 8)).astype(np.float32)
    y = loading.one_hot(rng.integers(0, 3, size=60), 3)
    batches = loading.in_memory_batches(x, y, 16)  # the last batch is short, as in real epochs

    def compiled() -> keras.Model:
        keras.utils.set_random_seed(1)
        layers = [keras.Input((8,)), keras.layers.Dense(16, "relu"), keras.layers.Dense(3, "softmax")]
        model = keras.Sequential(layers)
        train._compile(model, 1e-2)
        return model

    by_fit, by_loop = compiled(), compiled()
    fit = {"class_weight": class_weight, "epochs": 2, "shuffle": False, "verbose": 0}
    history = by_fit.fit(batches, validation_data=batches, **fit).history
    loop = CustomLoop(by_loop, tf.distribute.get_strategy(), class_weight)
    logs = [loop.epoch(batches, batches) for _ in range(2)]

    for mine, theirs in zip(by_loop.get_weights(), by_fit.get_weights(), strict=True):
        np.testing.assert_allclose(mine, theirs, atol=1e-6)
    for key, values in history.items():
        np.testing.assert_allclose([epoch[key] for epoch in logs], values, rtol=1e-5, err_msg=key)


def test_many_head_steps_per_call_train_exactly_as_one_step_per_call() -> None:
    # On cached features the head runs FEATURE_STEPS_PER_EXECUTION steps per call of its graph;
    # the steps must be the very ones of one step per call: the short last batch, the epochs
    # split at a partial call, dropout, class weights, and the figures each epoch reports.
    import keras

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2 * 16 * train.FEATURE_STEPS_PER_EXECUTION + 70, 8)).astype(np.float32)
    y = loading.one_hot(rng.integers(0, 3, size=len(x)), 3)

    def trained(steps: int) -> tuple[list[np.ndarray], list[dict]]:
        keras.utils.set_random_seed(1)
        inputs = keras.Input((8,))
        hidden = keras.layers.Dropout(0.3)(keras.layers.Dense(16, "relu")(inputs))
        model = keras.Model(inputs, keras.layers.Dense(3, "softmax")(hidden))
        train._compile(model, 1e-2, steps)
        logs = []
        for epoch in range(3):  # one fit call per epoch, as the trainer makes them
            train.reseed_dropout(model, 7, epoch)
            history = model.fit(
                loading.in_memory_batches(x, y, 16),
                validation_data=loading.in_memory_batches(x[:50], y[:50], 16),
                class_weight={0: 2.0, 1: 0.5, 2: 1.0},
                initial_epoch=epoch,
                epochs=epoch + 1,
                shuffle=False,
                verbose=0,
            ).history
            logs.append({key: values[-1] for key, values in history.items()})
        return model.get_weights(), logs

    one_weights, one_logs = trained(1)
    many_weights, many_logs = trained(train.FEATURE_STEPS_PER_EXECUTION)
    for one, many in zip(one_weights, many_weights, strict=True):
        np.testing.assert_array_equal(one, many)
    assert one_logs == many_logs

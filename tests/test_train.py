"""Feeding the trainer: epoch order, oversampling, class weights, batches for replicas, decode cache;
and Grad-CAM on a trained classifier's layout."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from breedscope.data.manifest import Row
from breedscope.features import batching, loading
from breedscope.training import trainer as train
from tests.helpers import noise_image


def test_epoch_order_is_a_pure_function_of_seed_and_epoch() -> None:
    labels = np.array([0] * 10 + [1] * 5)
    first = loading.epoch_order(labels, seed=3, epoch=2, oversample=False)
    assert np.array_equal(first, loading.epoch_order(labels, seed=3, epoch=2, oversample=False))
    assert not np.array_equal(first, loading.epoch_order(labels, seed=3, epoch=3, oversample=False))
    assert sorted(first) == list(range(15))


def test_oversampling_evens_out_the_classes_every_epoch() -> None:
    labels = np.array([0] * 12 + [1] * 3 + [2] * 6)
    order = loading.epoch_order(labels, seed=0, epoch=0, oversample=True)
    assert np.bincount(labels[order]).tolist() == [12, 12, 12]
    assert set(order[labels[order] == 1]) == {12, 13, 14}


def test_class_weights_are_balanced() -> None:
    weights = train.class_weights(np.array([0] * 30 + [1] * 10), 3)
    assert weights[0] == pytest.approx(40 / (2 * 30))
    assert weights[1] == pytest.approx(40 / (2 * 10))
    assert weights[2] == 1.0  # absent from training: neutral


@pytest.mark.parametrize(
    "count,size,replicas,drop,expected",
    [
        (25, 8, 1, False, [8, 8, 8, 1]),
        (25, 8, 2, False, [8, 8, 9]),  # a batch of 1 cannot feed two replicas: merged
        (25, 8, 2, True, [8, 8, 8]),  # training: cut to a multiple of the replicas
        (27, 8, 2, True, [8, 8, 8, 2]),
    ],
)
def test_batch_slices(count: int, size: int, replicas: int, drop: bool, expected: list[int]) -> None:
    slices = batching.batch_slices(count, size, replicas, drop_remainder=drop)
    assert [s.stop - s.start for s in slices] == expected
    assert slices[0].start == 0 and all(a.stop == b.start for a, b in itertools.pairwise(slices))


def test_decode_cache_decodes_each_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    noise_image(1, 60).save(tmp_path / "a.png")
    row = Row("a.png", "x", "train", "a.png", "ab" * 32, "", 60, 60, "")
    loader = loading.ImageLoader(tmp_path, 32, cache_dir=tmp_path / "cache")
    first = loader(row)
    assert (tmp_path / "cache" / "ab" / f"{'ab' * 32}.npy").is_file()
    monkeypatch.setattr(loading, "load_rgb", lambda *a: pytest.fail("decoded twice"))
    assert np.array_equal(loader(row), first)
    assert first.shape == (32, 32, 3)


def test_a_vanished_image_is_a_clear_error(tmp_path: Path) -> None:
    row = Row("gone.png", "x", "train", "gone.png", "cd" * 32, "", 60, 60, "")
    with pytest.raises(loading.DataError, match=r"gone\.png changed or vanished since validation"):
        loading.ImageLoader(tmp_path, 32)(row)


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


@pytest.mark.parametrize(
    "tf_config",
    [
        None,
        "not json",
        '{"cluster": {"worker": ["a:1"]}}',  # no task
        '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}',  # no such worker
        '{"cluster": {"worker": ["a"]}, "task": {"type": "worker", "index": 0}}',  # no port
        '{"cluster": {"worker": ["a:1"], "ps": ["b:2"]}, "task": {"type": "ps", "index": 0}}',  # a ps task
    ],
)
def test_multiworker_without_a_sound_tf_config_is_refused_in_one_sentence(
    tf_config: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from breedscope.core.errors import ConfigError
    from breedscope.training import distribute

    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(ConfigError, match="multiworker needs TF_CONFIG set on every machine"):
        distribute.strategy("multiworker")


def test_the_rendezvous_waits_for_the_other_trainers_only() -> None:
    # An evaluator (or a ps) in TF_CONFIG does not join the training's collectives: a worker
    # waiting for one would wait forever.
    import socket
    import threading

    from breedscope.training import distribute

    with socket.create_server(("127.0.0.1", 0)) as other_worker:
        with socket.create_server(("127.0.0.1", 0)) as probe:
            mine = probe.getsockname()[1]  # free once closed
        other = other_worker.getsockname()[1]
        cluster = {"worker": [f"127.0.0.1:{mine}", f"127.0.0.1:{other}"], "evaluator": ["127.0.0.1:9"]}
        waiting = threading.Thread(target=distribute.wait_for_peers, args=(cluster, "worker:0"), daemon=True)
        waiting.start()
        waiting.join(timeout=10)
    assert not waiting.is_alive(), "still waiting, for the evaluator"

"""The shared trainer: a frozen (or trainable) backbone with a dense head, one epoch at a time.

Each epoch is one ``fit`` call on data that is a pure function of (seed, epoch): which
augmented view each image shows and the batch order. That makes runs reproducible and lets
a killed run resume from its last checkpoint with exactly the epochs it had left. Early
stopping, checkpoints and history are kept here in plain files, not in callback state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from breedscope.config.settings import RunConfig
from breedscope.core import signals
from breedscope.core.errors import DataError
from breedscope.core.paths import images_dir
from breedscope.core.progress import LiveLines, console
from breedscope.data.images import decoded_images_name
from breedscope.features.augment import Augmenter
from breedscope.features.batching import batch_slices
from breedscope.features.loading import BatchPlan, ImageLoader, epoch_order, image_batches
from breedscope.model.backbone import build_feature_extractor
from breedscope.model.classifier import (
    assemble,
    build_head,
    load_model,
    load_weights,
    save_model,
    save_weights,
    unfreeze_top,
)
from breedscope.runs import tracking
from breedscope.runs.checkpoints import epoch_checkpoint
from breedscope.runs.rundir import RunDir
from breedscope.training import distribute
from breedscope.training.custom_loop import CustomLoop
from breedscope.training.feature_data import (
    FeatureEpochs,
    Splits,
    augmented_views,
    feature_cache,
    features_for_testing,
    tests_on_features,
    uses_feature_cache,
)
from breedscope.training.job import Job

if TYPE_CHECKING:
    import keras
    import tensorflow as tf


# A head step on cached features takes microseconds of arithmetic and milliseconds of Keras'
# per-call overhead; this many steps run in one call of the compiled graph (the same steps in
# the same order: bit-identical weights), while Ctrl-C still lands within a fraction of a second.
# Steps through the backbone (images) keep one step per call.
FEATURE_STEPS_PER_EXECUTION = 32


def class_weights(labels: np.ndarray, n_classes: int) -> dict[int, float]:
    from sklearn.utils.class_weight import compute_class_weight

    present = np.unique(labels)
    weights = compute_class_weight("balanced", classes=present, y=labels)
    table = dict.fromkeys(range(n_classes), 1.0)
    table.update({int(c): float(w) for c, w in zip(present, weights, strict=True)})
    return table


@dataclass
class TrainResult:
    model: keras.Model
    test_probabilities: np.ndarray
    history: list[dict[str, float]]
    best_epoch: int | None
    stopped_early: bool
    feature_cache: bool
    replicas: int = 1
    model_file: Path | None = None  # a saved copy of exactly ``model``, when there is one
    feature_runtime: dict | None = None  # the runtime that computed the features, and its check
    # The frozen backbone's feature maps from the runtime that computed the features, when the
    # model's backbone is exactly that one (not fine-tuned) and the runtime has them: Grad-CAM.
    feature_maps: Callable[[np.ndarray], np.ndarray] | None = None
    val_probabilities: np.ndarray | None = None  # predicted only for an operating point chosen on them


class _TensorBoardLog:
    """Per-epoch scalars under ``train/`` and ``validation/``, as Keras' TensorBoard callback
    names them, through writers kept open for the whole run (the callback opens new ones in
    every ``fit`` call, and there is one call per epoch)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.writers: dict[str, tf.summary.SummaryWriter] = {}

    def write(self, row: dict[str, float]) -> None:
        import tensorflow as tf

        for key, value in row.items():
            if key == "epoch":
                continue
            split, metric = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
            if split not in self.writers:
                self.writers[split] = tf.summary.create_file_writer(str(self.directory / split))
            with self.writers[split].as_default():
                tf.summary.scalar(f"epoch_{metric}", value, step=int(row["epoch"]) - 1)
        for writer in self.writers.values():
            writer.flush()  # a killed run keeps the curves of the epochs it finished


class _Trainer:
    """Runs epochs one ``fit`` call at a time, keeping early stopping and checkpoints in files."""

    def __init__(
        self, config: RunConfig, splits: Splits, run: RunDir, strategy: tf.distribute.Strategy
    ) -> None:
        self.config, self.splits, self.run, self.strategy = config, splits, run, strategy
        self.checkpoints = run.checkpoints()
        self.state = self.checkpoints.state()
        self.checkpoints.folder.mkdir(exist_ok=True)
        self.oversample = config.balance.policy == "oversample"
        self.weights = (
            class_weights(splits.labels["train"], len(splits.classes))
            if config.balance.policy == "class_weights"
            else None
        )
        self.tensorboard = _TensorBoardLog(run.tensorboard)
        self.epoch_lines = LiveLines()

    @property
    def last(self) -> Path | None:
        """The model saved together with the current state (``None`` before the first epoch)."""
        return self.checkpoints.saved_with(self.state)

    @property
    def best(self) -> Path:
        return self.checkpoints.best

    @property
    def after_head(self) -> Path:
        return self.checkpoints.after_head

    def fit(
        self, model: keras.Model, until: int, epoch_data: Callable[[int], dict], val_data: object
    ) -> None:
        """Train ``model`` up to epoch ``until`` (exclusive), or until early stopping."""
        state, patience = self.state, self.config.train.patience
        custom = distribute.needs_custom_loop(self.strategy)
        loop = CustomLoop(model, self.strategy, self.weights) if custom else None
        while state.next_epoch < until:
            epoch = state.next_epoch
            reseed_dropout(model, self.config.train.seed, epoch)
            if loop is not None:
                logs = loop.epoch(epoch_data(epoch)["x"], val_data)
            else:
                history = model.fit(
                    **epoch_data(epoch),
                    validation_data=val_data,
                    initial_epoch=epoch,
                    epochs=epoch + 1,
                    class_weight=self.weights,
                    verbose=0,
                ).history
                logs = {k: v[-1] for k, v in history.items()}
            row = {"epoch": epoch + 1, **{k: float(v) for k, v in logs.items()}}
            state.history.append(row)
            self.tensorboard.write(row)
            self.epoch_lines.add(_epoch_line(row, until))
            tracking.epoch_ended(row)
            stop = False
            if val_data is not None:
                if state.best_val_loss is None or row["val_loss"] < state.best_val_loss:
                    state.best_val_loss, state.best_epoch = row["val_loss"], epoch + 1
                    state.epochs_without_improvement = 0
                    self.save_best(model)
                else:
                    state.epochs_without_improvement += 1
                stop = patience is not None and state.epochs_without_improvement >= patience
            state.next_epoch = epoch + 1
            self.checkpoint(model)
            signals.stop_if_signalled()  # a Ctrl-C whose KeyboardInterrupt something swallowed
            if stop:
                console.print(f"Early stopping: no better validation loss for {patience} epochs.")
                return

    def checkpoint(self, model: keras.Model) -> None:
        """Save the model under a new name, then the state naming it, then drop the old file.

        A kill at any point leaves a state and the very model it describes: an older pair, or
        the new one, never the new model with the old state (which would train an epoch twice).
        """
        previous = self.last
        name = epoch_checkpoint(self.state.next_epoch, self.state.phase)
        save_model(model, self.checkpoints.file(name))
        self.state.checkpoint = name
        self.checkpoints.save_state(self.state)
        if previous is not None and previous.name != name:
            previous.unlink()
        self.run.write_history(self.state.history)

    def save_best(self, model: keras.Model) -> None:
        save_weights(model, self.best)

    def restore_best(self, model: keras.Model) -> None:
        if self.splits.rows["val"] and self.best.is_file():
            load_weights(model, self.best)

    def next_phase(self, phase: str) -> None:
        if self.state.phase == "head":
            self.state.head_epochs = self.state.next_epoch
        self.state.phase = phase
        self.state.epochs_without_improvement = 0
        self.checkpoints.save_state(self.state)


def reseed_dropout(model: keras.Model, seed: int, epoch: int) -> None:
    """Make this epoch's dropout masks a function of (seed, epoch), like its data.

    Keras keeps each dropout layer's random state in a variable that ``model.save`` does not
    store, so a resumed run would otherwise draw different masks from the first epoch after the
    kill. Resetting the states before every epoch makes a resumed run equal an uninterrupted one.
    """
    states = [v for v in model.non_trainable_variables if v.path.endswith("seed_generator_state")]
    for index, state in enumerate(states):
        start = np.random.default_rng([seed, epoch, 2, index]).integers(1, 2**31 - 1)
        state.assign(np.array([start, 0], dtype=state.dtype))


def predict_in_batches(model: keras.Model, batches: Iterable[np.ndarray]) -> np.ndarray:
    """Direct calls on one device: any batch size works, whatever strategy trained the model."""
    return np.concatenate([np.asarray(model(x, training=False)) for x in batches])


def _compile(model: keras.Model, learning_rate: float, steps_per_execution: int = 1) -> None:
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=steps_per_execution,
    )


@dataclass(frozen=True)
class _Images:
    """The run's images as Keras batches (decoded once, then read from the decoded-image cache):
    a split in order, or one epoch of the training split in that epoch's order, augmented."""

    splits: Splits
    decoded: ImageLoader
    augmenter: Augmenter | None
    batch_size: int
    cut: int  # batches are cut to a multiple of this many replicas
    seed: int
    oversample: bool

    def split(
        self,
        split: str,
        drop_remainder: bool,
        order: np.ndarray | None = None,
        epoch: int = 0,
        augment: bool = False,
    ) -> object:
        order = np.arange(len(self.splits.rows[split])) if order is None else order
        plan = BatchPlan(
            rows=self.splits.rows[split],
            labels=self.splits.labels[split],
            order=order,
            slices=batch_slices(len(order), self.batch_size, self.cut, drop_remainder=drop_remainder),
            augmenter=self.augmenter if augment else None,
            epoch=epoch,
            n_classes=len(self.splits.classes),
        )
        return image_batches(plan, self.decoded)

    def epoch(self, epoch: int) -> dict:
        order = epoch_order(self.splits.labels["train"], self.seed, epoch, self.oversample)
        # The order is already this epoch's; Keras must not shuffle the batches again.
        return {"x": self.split("train", True, order, epoch, augment=True), "shuffle": False}

    @property
    def validation(self) -> object | None:
        # With several replicas, validation batches are cut to a multiple of them as well.
        return self.split("val", self.cut > 1) if self.splits.rows["val"] else None


def _check_devices(job: Job) -> None:
    """Say how many replicas train, and refuse a cluster whose workers split different images."""
    strategy = job.prepared.strategy
    custom_loop = distribute.needs_custom_loop(strategy)
    if strategy.num_replicas_in_sync > 1:  # one CPU or GPU is the ordinary case, not worth a line
        kind = "MultiWorkerMirroredStrategy" if custom_loop else type(strategy).__name__
        console.print(f"Training on {strategy.num_replicas_in_sync} replicas ({kind}).")
    if custom_loop and not distribute.same_on_every_worker(strategy, job.manifest.sha256()):
        raise DataError(
            "The workers of the cluster split different images (their manifests differ): every machine "
            "needs the same dataset; fetch it from the same source everywhere, or pass one --manifest."
        )


def _head_phase(job: Job, trainer: _Trainer, images: _Images, features: FeatureEpochs | None) -> keras.Model:
    """Phase 1: the head on a frozen backbone (on cached ``features`` when there are), or the
    whole model on images with ``model.train_base``; returns the whole model, its best epoch's
    weights restored and saved as ``after_head``."""
    config, prepared = job.config, job.prepared
    strategy, extractor = prepared.strategy, prepared.extractor
    n_classes = len(trainer.splits.classes)
    use_cache = uses_feature_cache(config)
    with strategy.scope():
        if trainer.last is not None:
            model = load_model(trainer.last, n_classes)
        else:
            head = build_head(extractor.output_shape[-1], n_classes, config.model)
            if use_cache:
                model = head
            else:  # several workers: the extractor was made outside the strategy; this one trains
                custom_loop = distribute.needs_custom_loop(strategy)
                base = build_feature_extractor(prepared.backbone, config.model) if custom_loop else extractor
                model = assemble(base, head)
            steps = FEATURE_STEPS_PER_EXECUTION if use_cache else 1
            _compile(model, config.train.learning_rate, steps)
    if features is not None:
        trainer.fit(model, config.train.epochs, features.epoch, features.validation)
    else:
        trainer.fit(model, config.train.epochs, images.epoch, images.validation)
    trainer.restore_best(model)
    full = assemble(extractor, model) if use_cache else model
    save_model(full, trainer.after_head)
    trainer.next_phase("fine_tune" if config.train.fine_tune_epochs else "done")
    return full


def _fine_tuned(job: Job, trainer: _Trainer, images: _Images, full: keras.Model | None) -> keras.Model:
    """Phase 2, if asked: the top of the backbone unfrozen and trained on images at a low learning
    rate, from the head phase's model (``full``, or its file when resumed); returns the model to test."""
    config, strategy = job.config, job.prepared.strategy
    state, n_classes = trainer.state, len(trainer.splits.classes)
    fine_tune_epochs = config.train.fine_tune_epochs
    custom_loop = distribute.needs_custom_loop(strategy)
    with strategy.scope():
        if state.phase == "fine_tune" and state.next_epoch == state.head_epochs:
            full = full if full is not None and not custom_loop else load_model(trainer.after_head, n_classes)
            unfrozen = unfreeze_top(full, config.train.fine_tune_layers)
            console.print(f"Fine-tuning the top {unfrozen} backbone layers on images.")
            _compile(full, config.train.fine_tune_learning_rate)
            if images.splits.rows["val"]:
                trainer.save_best(full)  # fine-tuning has to beat the head alone
        elif state.phase == "fine_tune" or fine_tune_epochs:
            assert trainer.last is not None, "a fine-tuning phase always has a checkpoint"
            full = load_model(trainer.last, n_classes)
            if state.phase == "done":
                trainer.restore_best(full)
        elif full is None:  # resumed after the head phase had finished
            full = load_model(trainer.after_head, n_classes)
    if state.phase == "fine_tune":
        trainer.fit(full, state.head_epochs + fine_tune_epochs, images.epoch, images.validation)
        trainer.restore_best(full)
        trainer.next_phase("done")
    return full


def train(job: Job) -> TrainResult:
    """Train on the job's train split, select on val, predict the test split.

    Phase 1 trains the head on a frozen base (on cached features when possible) or, with
    ``model.train_base``, the whole model on images. Phase 2, if asked, unfreezes the top of the
    backbone and trains on images at a low learning rate. Both resume from ``checkpoints/``.
    """
    config, strategy = job.config, job.prepared.strategy
    _check_devices(job)
    splits = Splits.of(job.manifest)
    augmenter, views = augmented_views(config, job.augmentation)
    size = config.model.image_size
    loader = ImageLoader(job.image_root, size)
    trainer = _Trainer(config, splits, job.run, strategy)
    # model.fit wants every batch cut to a multiple of the replicas; the custom loop takes any
    # share, so its batches are the ones a single machine would see.
    cut = 1 if distribute.needs_custom_loop(strategy) else strategy.num_replicas_in_sync
    decoded = ImageLoader(job.image_root, size, images_dir() / decoded_images_name(size))
    images = _Images(
        splits, decoded, augmenter, config.train.batch_size, cut, config.train.seed, trainer.oversample
    )
    use_cache = uses_feature_cache(config)
    cache = feature_cache(config, job.prepared, splits, views) if use_cache else None

    full: keras.Model | None = None
    if trainer.state.phase == "head":
        features = None
        if cache is not None:
            dim = job.prepared.extractor.output_shape[-1]
            features = FeatureEpochs.of(cache, dim, splits, loader, augmenter, views, config, cut)
        full = _head_phase(job, trainer, images, features)
    full = _fine_tuned(job, trainer, images, full)
    state, fine_tune_epochs = trainer.state, config.train.fine_tune_epochs
    stopped_early = state.head_epochs < config.train.epochs or (
        state.next_epoch - state.head_epochs < fine_tune_epochs
    )

    def predicted(split: str) -> np.ndarray:
        if cache is not None and tests_on_features(config):  # the split's features are cached
            cached = features_for_testing(cache, splits.rows[split], loader, split)
            batches = (cached.read(np.arange(len(cached))[s]) for s in batch_slices(len(cached), 256))
            return predict_in_batches(full.get_layer("head"), batches)
        split_batches = images.split(split, False)
        return predict_in_batches(full, (split_batches[i][0] for i in range(len(split_batches))))

    # Validation predictions only where an operating point is chosen on them.
    wants_val = config.decision.operating_point is not None and len(splits.rows["val"]) > 0
    return TrainResult(
        full,
        predicted("test"),
        state.history,
        state.best_epoch,
        stopped_early,
        use_cache,
        strategy.num_replicas_in_sync,
        trainer.after_head if not fine_tune_epochs else None,
        cache.forward.record() if cache is not None else None,
        cache.forward.maps if cache is not None and tests_on_features(config) else None,
        predicted("val") if wants_val else None,
    )


def _epoch_line(row: dict[str, float], epochs: int) -> str:
    parts = [f"epoch {int(row['epoch'])}/{epochs}", f"loss {row['loss']:.4f}", f"acc {row['accuracy']:.4f}"]
    if "val_loss" in row:
        parts += [f"val_loss {row['val_loss']:.4f}", f"val_acc {row['val_accuracy']:.4f}"]
    return "  ".join(parts)

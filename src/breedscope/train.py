"""The shared trainer: a frozen (or trainable) backbone with a dense head, one epoch at a time.

Each epoch is one ``fit`` call on data that is a pure function of (seed, epoch): which
augmented view each image shows and the batch order. That makes runs reproducible and lets
a killed run resume from its last checkpoint with exactly the epochs it had left. Early
stopping, checkpoints and history are kept here in plain files, not in callback state.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import TypeAdapter

from breedscope import distribute, quiet, runtime
from breedscope.atomic import write_json
from breedscope.augment import Augmenter, AugmentPreset
from breedscope.batching import batch_slices
from breedscope.config import RunConfig
from breedscope.custom_loop import CustomLoop
from breedscope.errors import DataError
from breedscope.features import FeatureCache, FeatureSet, extractor_key
from breedscope.images import decoded_images_name
from breedscope.loading import (
    BatchPlan,
    FeaturePlan,
    ImageLoader,
    epoch_order,
    feature_batches,
    image_batches,
    in_memory_batches,
    one_hot,
)
from breedscope.manifest import Manifest, Row
from breedscope.model import (
    BackboneSpec,
    assemble,
    build_feature_extractor,
    build_head,
    load_model,
    load_weights,
    save_model,
    save_weights,
    unfreeze_top,
)
from breedscope.paths import features_dir, images_dir
from breedscope.progress import console
from breedscope.rundir import CHECKPOINTS, RunDir

if TYPE_CHECKING:
    import keras
    import tensorflow as tf


STATE_FILE = "state.json"
PHASES = ("head", "fine_tune", "done")
# The model files a trainer saves (``last.keras``: runs before 0.2); nothing else is loaded or deleted.
CHECKPOINT_NAME = re.compile(r"epoch-\d{4,}-(head|fine_tune)\.keras|last\.keras")
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
class TrainState:
    """What survives a killed run: the phase, where it was, how it was doing, its history."""

    phase: str = "head"  # "head", then "fine_tune" if asked, then "done"
    next_epoch: int = 0
    head_epochs: int = 0  # epochs the head phase ran; fine-tuning epochs are numbered after them
    best_val_loss: float | None = None
    best_epoch: int | None = None
    epochs_without_improvement: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    checkpoint: str | None = None  # the model file saved with exactly this state

    @classmethod
    def load(cls, directory: Path) -> TrainState:
        """The state in ``directory`` (``checkpoints/``), checked as the input it is: a run
        directory may come from anyone, and the state names the file a resumed run loads and
        later deletes, which must be a checkpoint breedscope writes, inside ``directory``."""
        file = directory / STATE_FILE
        if not file.is_file():
            return cls()
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
            TypeAdapter(cls).validate_python(data)  # types checked; the values kept as written
            state = cls(**data)  # (pydantic would make an epoch's 1 a 1.0 in the history)
        except (ValueError, TypeError):  # JSON, UTF-8 and pydantic's validation errors
            state = None
        problem = state.problem() if state is not None else "it is not the JSON breedscope writes"
        if problem is not None:
            raise DataError(
                f"{file} cannot be used: {problem}. Restore the run directory from its owner, or delete "
                f"{directory} to train the run again from its first epoch."
            )
        return state

    def problem(self) -> str | None:
        """Why this state cannot be resumed (``None``: it can)."""
        if self.phase not in PHASES:
            return f"its phase '{self.phase}' is none of {', '.join(PHASES)}"
        if self.checkpoint is None:
            return None
        if not CHECKPOINT_NAME.fullmatch(self.checkpoint):
            return f"it names '{self.checkpoint}', which is no checkpoint breedscope writes"
        return None

    def save(self, directory: Path) -> None:
        write_json(directory / STATE_FILE, self.__dict__)


def saved_state(run_dir: Path) -> tuple[Path, TrainState]:
    """The run's checkpoints folder and the training state saved there, checked as input (a
    resumed run calls this before anything in the run directory changes)."""
    checkpoints = RunDir(run_dir).inside(CHECKPOINTS)
    return checkpoints, TrainState.load(checkpoints)


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


@dataclass
class _Splits:
    """The manifest's splits as rows and integer labels."""

    classes: list[str]
    rows: dict[str, list[Row]]
    labels: dict[str, np.ndarray]

    @classmethod
    def of(cls, manifest: Manifest) -> _Splits:
        classes = manifest.classes
        index_of = {name: i for i, name in enumerate(classes)}
        rows = {name: manifest.split(name) for name in ("train", "val", "test")}
        labels = {
            name: np.array([index_of[r.label] for r in rs], dtype=np.int64) for name, rs in rows.items()
        }
        return cls(classes, rows, labels)


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
        self, config: RunConfig, splits: _Splits, run_dir: Path, strategy: tf.distribute.Strategy
    ) -> None:
        self.config, self.splits, self.run_dir, self.strategy = config, splits, run_dir, strategy
        self.checkpoints, self.state = saved_state(run_dir)
        self.checkpoints.mkdir(exist_ok=True)
        self.oversample = config.balance.policy == "oversample"
        self.weights = (
            class_weights(splits.labels["train"], len(splits.classes))
            if config.balance.policy == "class_weights"
            else None
        )
        self.tensorboard = _TensorBoardLog(run_dir / "tensorboard")

    def _file(self, name: str) -> Path:
        """A checkpoint file: read, replaced and deleted only as a file of ``checkpoints/``, never
        through a link that a run directory from elsewhere might hold there."""
        path = self.checkpoints / name
        if path.is_symlink():
            raise DataError(
                f"{path} is a link, not a checkpoint breedscope wrote; restore the run directory from "
                f"its owner, or delete {self.checkpoints} to train the run again from its first epoch."
            )
        return path

    @property
    def last(self) -> Path | None:
        """The model saved together with the current state (``None`` before the first epoch)."""
        path = self._file(self.state.checkpoint or "last.keras")  # the one file runs before 0.2 kept
        return path if path.is_file() else None

    @property
    def best(self) -> Path:
        return self._file("best.weights.npz")

    @property
    def after_head(self) -> Path:
        return self._file("after_head.keras")

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
            _report_epoch(row, until)
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
            if stop:
                console.print(f"Early stopping: no better validation loss for {patience} epochs.")
                return

    def checkpoint(self, model: keras.Model) -> None:
        """Save the model under a new name, then the state naming it, then drop the old file.

        A kill at any point leaves a state and the very model it describes: an older pair, or
        the new one, never the new model with the old state (which would train an epoch twice).
        """
        previous = self.last
        name = f"epoch-{self.state.next_epoch:04d}-{self.state.phase}.keras"
        save_model(model, self.checkpoints / name)
        self.state.checkpoint = name
        self.state.save(self.checkpoints)
        if previous is not None and previous.name != name:
            previous.unlink()
        RunDir(self.run_dir).write_history(self.state.history)

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
        self.state.save(self.checkpoints)


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


@dataclass
class Prepared:
    """What training starts from, set up before a run directory exists: seeded, on its devices,
    with the backbone built (so missing or wrong weights are refused before any file is written)."""

    strategy: tf.distribute.Strategy
    backbone: BackboneSpec
    extractor: keras.Model
    feature_cache: FeatureCache | None = None  # the cache :func:`features_ahead` filled, if it did


def prepare(config: RunConfig, backbone: BackboneSpec, cache: FeatureCache | None = None) -> Prepared:
    """Seed everything, choose the devices and build the feature extractor with its weights
    (``cache``: the feature cache :func:`features_ahead` filled, handed on to :func:`train`)."""
    quiet.load_tensorflow()
    import keras
    import tensorflow as tf

    strategy = distribute.strategy(config.train.strategy)  # first: it may set up TensorFlow's context
    keras.utils.set_random_seed(config.train.seed)
    random.seed(config.train.seed)
    tf.config.experimental.enable_op_determinism()
    distribute.set_precision(config.train.mixed_precision)
    # Several workers: features are each worker's own work, so the extractor stays outside the
    # strategy (a model made in its scope would make every forward pass a collective operation).
    scope = contextlib.nullcontext() if distribute.needs_custom_loop(strategy) else strategy.scope()
    with scope:
        extractor = build_feature_extractor(backbone, config.model)
    return Prepared(strategy, backbone, extractor, cache)


def uses_feature_cache(config: RunConfig) -> bool:
    """Whether the run trains its head on cached features of a frozen backbone."""
    return config.train.feature_cache and not config.model.train_base


def tests_on_features(config: RunConfig) -> bool:
    """Whether the test split is predicted from cached features: fine-tuned models see images."""
    return uses_feature_cache(config) and not config.train.fine_tune_epochs


def _runtime_setting(config: RunConfig, splits: _Splits, views: int) -> str:
    """``train.feature_runtime``, with ``auto`` settled to Keras where LiteRT cannot help: a
    float16 graph, or a run too small to repay converting the backbone."""
    setting = config.train.feature_runtime
    if setting != "auto":
        return setting
    if config.train.mixed_precision:
        return "keras"  # a float16 graph stays with Keras
    rows = splits.rows
    embedded = len(rows["train"]) * views + len(rows["val"]) + len(rows["test"])
    return setting if runtime.worth_converting(embedded, config.model.image_size) else "keras"


def _extractor_dir(config: RunConfig, backbone: str) -> Path:
    return features_dir() / extractor_key(backbone, config.model, config.train.seed)


def _feature_cache(config: RunConfig, prepared: Prepared, splits: _Splits, views: int) -> FeatureCache:
    """The cache of the frozen backbone's features, made by the runtime ``train.feature_runtime``
    asks for (or the fastest that agrees with Keras): the one features were computed ahead in,
    if they were."""
    if prepared.feature_cache is not None:
        return prepared.feature_cache
    backbone, extractor = prepared.backbone, prepared.extractor
    size = config.model.image_size
    key_dir = _extractor_dir(config, backbone.name)
    forward = runtime.choose(extractor, _runtime_setting(config, splits, views), key_dir, size)
    return FeatureCache(key_dir / forward.runtime, forward, size)


def _augmented_views(config: RunConfig, augmentation: AugmentPreset) -> tuple[Augmenter | None, int]:
    """The augmenter training images go through (``None`` for none) and how many views of each."""
    augmenter = Augmenter(augmentation, config.train.seed)
    if augmenter.is_identity:
        return None, 1
    return augmenter, config.augment.views


def _train_features(
    cache: FeatureCache,
    rows: dict[str, list[Row]],
    loader: ImageLoader,
    augmenter: Augmenter | None,
    views: int,
) -> tuple[list[FeatureSet], FeatureSet | None]:
    """Each training view's and validation's features, computed where the cache lacks them
    (every view an image lacks from one decoding of it)."""
    label = "Features: train" if views == 1 else f"Features: train, {views} views"
    train_sets = cache.features_of_views(rows["train"], loader, augmenter, range(views), label)
    val_set = cache.features(rows["val"], loader, label="Features: val") if rows["val"] else None
    return train_sets, val_set


def _test_features(cache: FeatureCache, rows: list[Row], loader: ImageLoader) -> FeatureSet:
    return cache.features(rows, loader, label="Features: test")


def features_ahead(
    config: RunConfig, manifest: Manifest, image_root: Path, backbone: str, augmentation: AugmentPreset
) -> FeatureCache | None:
    """Compute a frozen run's features of every split before training needs TensorFlow, while
    TensorFlow loads in a background thread: LiteRT needs neither it nor Keras once the backbone
    is converted (the first run converts it, and computes its features in :func:`train`). The
    two share the cores, and together take about a second less than one after the other (PBC);
    :func:`train` then finds every feature in the cache, which is returned (``None`` when
    nothing was computed).

    Nothing happens for runs whose features come from Keras, that train the backbone, that
    cross-validate, or that train on several machines (whose start waits for the other workers
    through TensorFlow).
    """
    if not uses_feature_cache(config) or config.cv.folds or config.train.strategy == "multiworker":
        return None
    size = config.model.image_size
    key_dir = _extractor_dir(config, backbone)
    splits = _Splits.of(manifest)
    augmenter, views = _augmented_views(config, augmentation)
    forward = runtime.already_converted(key_dir, size, _runtime_setting(config, splits, views))
    if forward is None:
        return None
    cache = FeatureCache(key_dir / forward.runtime, forward, size)
    loader = ImageLoader(image_root, size)
    with quiet.tensorflow_loading_behind():
        _train_features(cache, splits.rows, loader, augmenter, views)
        if tests_on_features(config):
            _test_features(cache, splits.rows["test"], loader)
    return cache


@dataclass
class _FeatureEpochs:
    """The head's data on cached features: every epoch's batches (one view of each training
    image, chosen from the seed and epoch) and validation's.

    Within ``train.feature_memory_mb`` the vectors sit in memory and feed a ``tf.data``
    pipeline (fastest); beyond it each batch reads just its vectors from the shards, so memory
    stays bounded."""

    train_sets: list[FeatureSet]  # one per augmented view
    val_set: FeatureSet | None
    splits: _Splits
    config: RunConfig
    cut: int  # batches are cut to a multiple of this many replicas
    train_table: np.ndarray | None = None  # views x images x features, when in memory
    val_table: np.ndarray | None = None

    @classmethod
    def of(
        cls,
        cache: FeatureCache,
        dim: int,
        splits: _Splits,
        loader: ImageLoader,
        augmenter: Augmenter | None,
        views: int,
        config: RunConfig,
        cut: int,
    ) -> _FeatureEpochs:
        """Each training view's and validation's features, computed where the cache lacks them."""
        train_sets, val_set = _train_features(cache, splits.rows, loader, augmenter, views)
        data = cls(train_sets, val_set, splits, config, cut)
        vectors = len(train_sets[0]) * views + (len(val_set) if val_set is not None else 0)
        if vectors * dim * 4 <= config.train.feature_memory_mb * 2**20:
            data.train_table = np.stack([features.read() for features in train_sets])
            data.val_table = val_set.read() if val_set is not None else None
        return data

    def _batches(
        self, split: str, sets: list[FeatureSet], order: np.ndarray, view_of: np.ndarray, drop: bool
    ) -> object:
        labels, batch = self.splits.labels[split], self.config.train.batch_size
        n_classes = len(self.splits.classes)
        if self.train_table is not None:
            table = self.train_table if split == "train" else self.val_table[None]
            return in_memory_batches(table[view_of, order], one_hot(labels[order], n_classes), batch)
        slices = batch_slices(len(order), batch, self.cut, drop_remainder=drop)
        return feature_batches(FeaturePlan(sets, labels, order, view_of, slices, n_classes))

    def epoch(self, epoch: int) -> dict:
        seed, views = self.config.train.seed, len(self.train_sets)
        oversample = self.config.balance.policy == "oversample"
        order = epoch_order(self.splits.labels["train"], seed, epoch, oversample)
        view_of = np.random.default_rng([seed, epoch, 1]).integers(0, views, size=len(order))
        return {"x": self._batches("train", self.train_sets, order, view_of, True), "shuffle": False}

    @property
    def validation(self) -> object | None:
        if self.val_set is None:
            return None
        count = len(self.val_set)
        return self._batches("val", [self.val_set], np.arange(count), np.zeros(count, int), self.cut > 1)


def train(
    config: RunConfig,
    manifest: Manifest,
    image_root: Path,
    run_dir: Path,
    augmentation: AugmentPreset,
    prepared: Prepared,
) -> TrainResult:
    """Train on ``manifest``'s train split, select on val, predict the test split.

    Phase 1 trains the head on a frozen base (on cached features when possible) or, with
    ``model.train_base``, the whole model on images. Phase 2, if asked, unfreezes the top of the
    backbone and trains on images at a low learning rate. Both resume from ``checkpoints/``.
    """
    seed = config.train.seed
    strategy, backbone, extractor = prepared.strategy, prepared.backbone, prepared.extractor
    replicas = strategy.num_replicas_in_sync
    custom_loop = distribute.needs_custom_loop(strategy)
    if replicas > 1:  # one CPU or GPU is the ordinary case, not worth a line
        kind = "MultiWorkerMirroredStrategy" if custom_loop else type(strategy).__name__
        console.print(f"Training on {replicas} replicas ({kind}).")

    if custom_loop and not distribute.same_on_every_worker(strategy, manifest.sha256()):
        raise DataError(
            "The workers of the cluster split different images (their manifests differ): every machine "
            "needs the same dataset; fetch it from the same source everywhere, or pass one --manifest."
        )
    splits = _Splits.of(manifest)
    n_classes, batch = len(splits.classes), config.train.batch_size
    augmenter_or_none, views = _augmented_views(config, augmentation)
    size = config.model.image_size
    loader = ImageLoader(image_root, size)
    decoded_images = ImageLoader(image_root, size, images_dir() / decoded_images_name(size))
    use_cache = uses_feature_cache(config)
    trainer = _Trainer(config, splits, run_dir, strategy)
    # model.fit wants every batch cut to a multiple of the replicas; the custom loop takes any
    # share, so its batches are the ones a single machine would see.
    cut = 1 if custom_loop else replicas
    state = trainer.state
    has_val = bool(splits.rows["val"])

    def images(
        split: str,
        drop_remainder: bool,
        order: np.ndarray | None = None,
        epoch: int = 0,
        augment: bool = False,
    ) -> object:
        order = np.arange(len(splits.rows[split])) if order is None else order
        plan = BatchPlan(
            rows=splits.rows[split],
            labels=splits.labels[split],
            order=order,
            slices=batch_slices(len(order), batch, cut, drop_remainder=drop_remainder),
            augmenter=augmenter_or_none if augment else None,
            epoch=epoch,
            n_classes=n_classes,
        )
        return image_batches(plan, decoded_images)

    def image_epoch(epoch: int) -> dict:
        order = epoch_order(splits.labels["train"], seed, epoch, trainer.oversample)
        # The order is already this epoch's; Keras must not shuffle the batches again.
        return {"x": images("train", True, order, epoch, augment=True), "shuffle": False}

    # With several replicas, validation batches are cut to a multiple of them as well.
    val_images = images("val", cut > 1) if has_val else None

    cache = _feature_cache(config, prepared, splits, views) if use_cache else None
    full: keras.Model | None = None
    if state.phase == "head":
        if cache is not None:
            dim = extractor.output_shape[-1]
            features = _FeatureEpochs.of(cache, dim, splits, loader, augmenter_or_none, views, config, cut)
        with strategy.scope():
            if trainer.last is not None:
                model = load_model(trainer.last, n_classes)
            else:
                head = build_head(extractor.output_shape[-1], n_classes, config.model)
                if use_cache:
                    model = head
                else:  # several workers: the extractor was made outside the strategy; this one trains
                    base = build_feature_extractor(backbone, config.model) if custom_loop else extractor
                    model = assemble(base, head)
                steps = FEATURE_STEPS_PER_EXECUTION if use_cache else 1
                _compile(model, config.train.learning_rate, steps)
        if cache is not None:
            trainer.fit(model, config.train.epochs, features.epoch, features.validation)
        else:
            trainer.fit(model, config.train.epochs, image_epoch, val_images)
        trainer.restore_best(model)
        full = assemble(extractor, model) if use_cache else model
        save_model(full, trainer.after_head)
        trainer.next_phase("fine_tune" if config.train.fine_tune_epochs else "done")
    fine_tune_epochs = config.train.fine_tune_epochs
    with strategy.scope():
        if state.phase == "fine_tune" and state.next_epoch == state.head_epochs:
            full = full if full is not None and not custom_loop else load_model(trainer.after_head, n_classes)
            unfrozen = unfreeze_top(full, config.train.fine_tune_layers)
            console.print(f"Fine-tuning the top {unfrozen} backbone layers on images.")
            _compile(full, config.train.fine_tune_learning_rate)
            if has_val:
                trainer.save_best(full)  # fine-tuning has to beat the head alone
        elif state.phase == "fine_tune" or fine_tune_epochs:
            assert trainer.last is not None, "a fine-tuning phase always has a checkpoint"
            full = load_model(trainer.last, n_classes)
            if state.phase == "done":
                trainer.restore_best(full)
        elif full is None:  # resumed after the head phase had finished
            full = load_model(trainer.after_head, n_classes)
    if state.phase == "fine_tune":
        trainer.fit(full, state.head_epochs + fine_tune_epochs, image_epoch, val_images)
        trainer.restore_best(full)
        trainer.next_phase("done")
    stopped_early = state.head_epochs < config.train.epochs or (
        state.next_epoch - state.head_epochs < fine_tune_epochs
    )

    if cache is not None and tests_on_features(config):  # the test split's features are cached
        test_set = _test_features(cache, splits.rows["test"], loader)
        batches = (test_set.read(np.arange(len(test_set))[s]) for s in batch_slices(len(test_set), 256))
        probabilities = predict_in_batches(full.get_layer("head"), batches)
    else:
        test_batches = images("test", False)
        probabilities = predict_in_batches(full, (test_batches[i][0] for i in range(len(test_batches))))
    return TrainResult(
        full,
        probabilities,
        state.history,
        state.best_epoch,
        stopped_early,
        use_cache,
        replicas,
        trainer.after_head if not fine_tune_epochs else None,
        cache.forward.record() if cache is not None else None,
        cache.forward.maps if cache is not None and tests_on_features(config) else None,
    )


def _report_epoch(row: dict[str, float], epochs: int) -> None:
    parts = [f"epoch {int(row['epoch'])}/{epochs}", f"loss {row['loss']:.4f}", f"acc {row['accuracy']:.4f}"]
    if "val_loss" in row:
        parts += [f"val_loss {row['val_loss']:.4f}", f"val_acc {row['val_accuracy']:.4f}"]
    console.print("  ".join(parts))

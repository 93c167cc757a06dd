"""The shared trainer: a frozen (or trainable) backbone with a dense head, one epoch at a time.

Each epoch is one ``fit`` call on data that is a pure function of (seed, epoch): which
augmented view each image shows and the batch order. That makes runs reproducible and lets
a killed run resume from its last checkpoint with exactly the epochs it had left. Early
stopping, checkpoints and history are kept here in plain files, not in callback state.
"""

from __future__ import annotations

import csv
import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from breedscope.atomic import atomic_path, write_json
from breedscope.augment import Augmenter
from breedscope.config import RunConfig
from breedscope.errors import DataError
from breedscope.features import FeatureCache, extractor_key
from breedscope.images import UnreadableImage, load_rgb
from breedscope.manifest import Manifest, Row
from breedscope.model import assemble, build_feature_extractor, build_head
from breedscope.paths import features_dir
from breedscope.progress import console

if TYPE_CHECKING:
    import keras

    from breedscope.plugins import Registry

CHECKPOINT_DIR = "checkpoints"
STATE_FILE = "state.json"
HISTORY_FILE = "history.csv"


class ImageLoader:
    """Decodes a manifest row's image at the model's input size."""

    def __init__(self, root: Path, size: int) -> None:
        self.root = root
        self.size = size

    def __call__(self, row: Row) -> np.ndarray:
        try:
            return load_rgb(self.root / row.path, self.size)
        except (UnreadableImage, FileNotFoundError) as exc:
            raise DataError(
                f"{row.path} changed or vanished since validation ({exc}); run "
                "`breedscope fetch` again with --force."
            ) from exc


def epoch_order(labels: np.ndarray, seed: int, epoch: int, oversample: bool) -> np.ndarray:
    """Training indices for one epoch: shuffled, and with minority classes repeated if asked."""
    rng = np.random.default_rng([seed, epoch])
    if oversample:
        counts = np.bincount(labels)
        largest = counts.max()
        parts = [
            rng.choice(np.flatnonzero(labels == c), size=largest, replace=counts[c] < largest)
            for c in range(len(counts))
            if counts[c] > 0
        ]
        indices = np.concatenate(parts)
    else:
        indices = np.arange(len(labels))
    return rng.permutation(indices)


def class_weights(labels: np.ndarray, n_classes: int) -> dict[int, float]:
    from sklearn.utils.class_weight import compute_class_weight

    present = np.unique(labels)
    weights = compute_class_weight("balanced", classes=present, y=labels)
    table = dict.fromkeys(range(n_classes), 1.0)
    table.update({int(c): float(w) for c, w in zip(present, weights, strict=True)})
    return table


@dataclass
class TrainState:
    """What survives a killed run: where it was, how it was doing, its history so far."""

    next_epoch: int = 0
    best_val_loss: float | None = None
    best_epoch: int | None = None
    epochs_without_improvement: int = 0
    stopped_early: bool = False
    history: list[dict[str, float]] = field(default_factory=list)

    @classmethod
    def load(cls, directory: Path) -> TrainState:
        file = directory / STATE_FILE
        return cls(**json.loads(file.read_text())) if file.is_file() else cls()

    def save(self, directory: Path) -> None:
        write_json(directory / STATE_FILE, self.__dict__)


@dataclass
class TrainResult:
    model: keras.Model
    test_probabilities: np.ndarray
    history: list[dict[str, float]]
    best_epoch: int | None
    stopped_early: bool
    feature_cache: bool


class _ImageBatches:
    """A Keras PyDataset of (augmented) images for one epoch."""

    def __new__(cls, *args, **kwargs):  # defer importing keras until training starts
        import keras

        class ImageBatches(keras.utils.PyDataset):
            def __init__(self, rows, labels, loader, augmenter, order, epoch, batch_size, n_classes):
                super().__init__()
                self.rows, self.labels, self.loader = rows, labels, loader
                self.augmenter, self.order, self.epoch = augmenter, order, epoch
                self.batch_size, self.n_classes = batch_size, n_classes

            def __len__(self) -> int:
                return int(np.ceil(len(self.order) / self.batch_size))

            def __getitem__(self, index: int):
                chosen = self.order[index * self.batch_size : (index + 1) * self.batch_size]
                images = []
                for i in chosen:
                    image = self.loader(self.rows[i])
                    if self.augmenter is not None:
                        image = self.augmenter(image, self.rows[i].sha256, self.epoch)
                    images.append(image)
                x = np.stack(images).astype(np.float32)
                return x, np.eye(self.n_classes, dtype=np.float32)[self.labels[chosen]]

        return ImageBatches(*args, **kwargs)


def _write_history(run_dir: Path, history: list[dict[str, float]]) -> None:
    if not history:
        return
    columns = ["epoch", *sorted(key for key in history[0] if key != "epoch")]
    with atomic_path(run_dir / HISTORY_FILE) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(history)


def train(
    config: RunConfig, manifest: Manifest, image_root: Path, run_dir: Path, registry: Registry
) -> TrainResult:
    """Train on ``manifest``'s train split, select on val, predict the test split."""
    import keras
    import tensorflow as tf

    seed = config.train.seed
    keras.utils.set_random_seed(seed)
    random.seed(seed)
    tf.config.experimental.enable_op_determinism()

    classes = manifest.classes
    index_of = {name: i for i, name in enumerate(classes)}
    splits = {name: manifest.split(name) for name in ("train", "val", "test")}
    labels = {
        name: np.array([index_of[r.label] for r in rows], dtype=np.int64) for name, rows in splits.items()
    }
    one_hot = {name: np.eye(len(classes), dtype=np.float32)[y] for name, y in labels.items()}

    backbone = registry.pick("backbones", config.model.backbone)
    preset = registry.pick("augmentations", config.augment.preset)
    augmenter = Augmenter(preset, seed)
    augmenter_or_none = None if augmenter.is_identity else augmenter
    loader = ImageLoader(image_root, config.model.image_size)
    extractor = build_feature_extractor(backbone, config.model)
    use_cache = config.train.feature_cache and not config.model.train_base
    views = config.augment.views if augmenter_or_none else 1

    checkpoints = run_dir / CHECKPOINT_DIR
    checkpoints.mkdir(exist_ok=True)
    state = TrainState.load(checkpoints)

    if use_cache:
        cache = FeatureCache(features_dir() / extractor_key(backbone.name, config.model, seed), extractor)
        train_views = np.stack(
            [
                cache.features(
                    splits["train"], loader, augmenter_or_none, v, f"Features: train view {v + 1}/{views}"
                )
                for v in range(views)
            ]
        )
        clean = {
            name: cache.features(splits[name], loader, None, 0, f"Features: {name}")
            for name in ("val", "test")
            if splits[name]
        }
        model = build_head(train_views.shape[-1], len(classes), config.model)
    else:
        model = assemble(extractor, build_head(extractor.output_shape[-1], len(classes), config.model))

    last = checkpoints / "last.keras"
    if last.is_file():
        model = keras.models.load_model(last)
    else:
        model.compile(
            optimizer=keras.optimizers.Adam(config.train.learning_rate),
            loss="categorical_crossentropy",
            metrics=["accuracy"],
        )

    weights = (
        class_weights(labels["train"], len(classes)) if config.balance.policy == "class_weights" else None
    )
    oversample = config.balance.policy == "oversample"
    has_val = bool(splits["val"])
    if has_val:
        val_data = (
            (clean["val"], one_hot["val"])
            if use_cache
            else _ImageBatches(
                splits["val"],
                labels["val"],
                loader,
                None,
                np.arange(len(splits["val"])),
                0,
                config.train.batch_size,
                len(classes),
            )
        )
    tensorboard = keras.callbacks.TensorBoard(log_dir=str(run_dir / "tensorboard"), write_graph=False)

    epochs = config.train.epochs
    while state.next_epoch < epochs and not state.stopped_early:
        epoch = state.next_epoch
        order = epoch_order(labels["train"], seed, epoch, oversample)
        if use_cache:
            view_of = np.random.default_rng([seed, epoch, 1]).integers(0, views, size=len(order))
            x: object = train_views[view_of, order]
            fit_kwargs = {
                "x": x,
                "y": one_hot["train"][order],
                "batch_size": config.train.batch_size,
                "shuffle": False,
            }
        else:
            fit_kwargs = {
                "x": _ImageBatches(
                    splits["train"],
                    labels["train"],
                    loader,
                    augmenter_or_none,
                    order,
                    epoch,
                    config.train.batch_size,
                    len(classes),
                )
            }
        logs = model.fit(
            **fit_kwargs,
            validation_data=val_data if has_val else None,
            initial_epoch=epoch,
            epochs=epoch + 1,
            class_weight=weights,
            callbacks=[tensorboard],
            verbose=0,
        ).history
        row = {"epoch": epoch + 1, **{k: float(v[-1]) for k, v in logs.items()}}
        state.history.append(row)
        _report_epoch(row, epochs)

        if has_val:
            improved = state.best_val_loss is None or row["val_loss"] < state.best_val_loss
            if improved:
                state.best_val_loss, state.best_epoch = row["val_loss"], epoch + 1
                state.epochs_without_improvement = 0
                model.save_weights(checkpoints / "best.weights.h5")
            else:
                state.epochs_without_improvement += 1
            patience = config.train.patience
            state.stopped_early = patience is not None and state.epochs_without_improvement >= patience
        state.next_epoch = epoch + 1
        partial = checkpoints / "last.partial.keras"  # Keras insists on the .keras suffix
        model.save(partial)
        os.replace(partial, last)
        state.save(checkpoints)
        _write_history(run_dir, state.history)

    if has_val and (checkpoints / "best.weights.h5").is_file():
        model.load_weights(checkpoints / "best.weights.h5")  # restore the best epoch

    if use_cache:
        probabilities = model.predict(clean["test"], batch_size=256, verbose=0)
        full = assemble(extractor, model)
    else:
        test_batches = _ImageBatches(
            splits["test"],
            labels["test"],
            loader,
            None,
            np.arange(len(splits["test"])),
            0,
            config.train.batch_size,
            len(classes),
        )
        probabilities = model.predict(test_batches, verbose=0)
        full = model
    return TrainResult(full, probabilities, state.history, state.best_epoch, state.stopped_early, use_cache)


def _report_epoch(row: dict[str, float], epochs: int) -> None:
    parts = [f"epoch {int(row['epoch'])}/{epochs}", f"loss {row['loss']:.4f}", f"acc {row['accuracy']:.4f}"]
    if "val_loss" in row:
        parts += [f"val_loss {row['val_loss']:.4f}", f"val_acc {row['val_accuracy']:.4f}"]
    console.print("  ".join(parts))

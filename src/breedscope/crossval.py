"""Grouped, stratified K-fold cross-validation: every image tested once per repeat.

Small test splits make single figures weak (72 test images, one basophil). Here the manifest's
images are dealt into K folds by scikit-learn's ``StratifiedGroupKFold`` over the manifest's
groups (a patient's images, exact and near-duplicates never straddle folds), a head is trained
on K-1 folds and tests the last, K times, and R times over with other deals. The backbone's
features are computed once per image and view (the feature cache), so K heads cost little more
than one. The run's ``evaluation.json`` is the pooled evaluation of every out-of-fold
prediction, with intervals that resample groups; each fold's own lies in ``folds/``.
"""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from breedscope.atomic import atomic_path
from breedscope.errors import ConfigError
from breedscope.evaluate import Evaluation, evaluate
from breedscope.manifest import Manifest, Row
from breedscope.progress import console

if TYPE_CHECKING:
    from breedscope.augment import AugmentPreset
    from breedscope.config import RunConfig
    from breedscope.train import Prepared

FOLDS_DIR = "folds"
FOLDS_FILE = "folds.csv"


def group_of(row: Row) -> str:
    return row.group or row.path


def assign_folds(rows: list[Row], folds: int, repeats: int, seed: int) -> np.ndarray:
    """``(repeats, len(rows))`` fold numbers: stratified by label, groups kept whole."""
    from sklearn.model_selection import StratifiedGroupKFold

    labels = [row.label for row in rows]
    groups = [group_of(row) for row in rows]
    smallest = min(labels.count(label) for label in set(labels))
    if smallest < folds:
        raise ConfigError(
            f"cv.folds is {folds}, but a class has only {smallest} image(s), so some folds would test none "
            f"of it; use --cv {max(2, smallest)} or fewer."
        )
    table = np.empty((repeats, len(rows)), dtype=int)
    for repeat in range(repeats):
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed + repeat)
        for fold, (_, test) in enumerate(splitter.split(np.zeros(len(rows)), labels, groups)):
            table[repeat, test] = fold
    return table


def write_folds(path: Path, rows: list[Row], table: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["path", "label", "group", *[f"repeat_{r + 1}" for r in range(len(table))]])
        for index, row in enumerate(rows):
            writer.writerow([row.path, row.label, group_of(row), *(int(f) + 1 for f in table[:, index])])


def as_pool(manifest: Manifest) -> Manifest:
    """The manifest of a cross-validated run: every row in the test split (each is tested once per
    repeat); warnings about the train/val/test split it no longer has are dropped."""
    header = dict(manifest.header)
    header["warnings"] = [w for w in header.get("warnings", []) if "split has no images" not in w]
    pool = Manifest([replace(row, split="test") for row in manifest.rows], header)
    header["counts"] = pool.counts()  # the split's counts no longer hold
    return pool


def fold_manifest(manifest: Manifest, rows: list[Row], assignment: np.ndarray, fold: int) -> Manifest:
    """The manifest one fold trains and tests on: its fold is the test split, the rest train."""
    split_rows = [
        replace(row, split="test" if f == fold else "train") for row, f in zip(rows, assignment, strict=True)
    ]
    return Manifest(split_rows, dict(manifest.header))


def cross_validate(
    config: RunConfig,
    manifest: Manifest,
    image_root: Path,
    run_dir: Path,
    augmentation: AugmentPreset,
    prepared: Prepared,
) -> tuple[Evaluation, list[Row], np.ndarray]:
    """Train and test every fold of every repeat; return the pooled evaluation, the out-of-fold
    rows and their probabilities (repeat by repeat, in manifest order)."""
    from breedscope.rundir import EVALUATION, RunDir
    from breedscope.train import train

    folds, repeats, seed = config.cv.folds, config.cv.repeats, config.train.seed
    assert folds is not None
    rows = manifest.rows
    table = assign_folds(rows, folds, repeats, seed)
    write_folds(run_dir / FOLDS_FILE, rows, table)
    classes = manifest.classes
    probabilities = np.zeros((repeats, len(rows), len(classes)), dtype=np.float32)
    per_fold = []
    for repeat in range(repeats):
        for fold in range(folds):
            fold_dir = run_dir / FOLDS_DIR / f"repeat{repeat + 1}-fold{fold + 1}"
            fold_dir.mkdir(parents=True, exist_ok=True)
            console.print(f"Cross-validation: repeat {repeat + 1} of {repeats}, fold {fold + 1} of {folds}.")
            tested = np.flatnonzero(table[repeat] == fold)
            saved = fold_dir / EVALUATION
            if saved.is_file():  # finished before an interruption: its predictions are kept
                fold_evaluation = Evaluation.read(saved)
                fold_p = np.load(fold_dir / "probabilities.npy")
            else:
                result = train(
                    config,
                    fold_manifest(manifest, rows, table[repeat], fold),
                    image_root,
                    fold_dir,
                    augmentation,
                    prepared,
                )
                fold_p = result.test_probabilities
                fold_rows = [rows[i] for i in tested]
                fold_evaluation = evaluate(
                    np.array([classes.index(r.label) for r in fold_rows]),
                    fold_p,
                    classes,
                    [r.path for r in fold_rows],
                    [group_of(r) for r in fold_rows],
                    seed=seed,
                )
                with atomic_path(fold_dir / "probabilities.npy") as tmp, open(tmp, "wb") as handle:
                    np.save(handle, fold_p)
                RunDir(fold_dir).write_evaluation(fold_evaluation)
            probabilities[repeat, tested] = fold_p
            per_fold.append(
                {
                    "repeat": repeat + 1,
                    "fold": fold + 1,
                    "n_test": len(tested),
                    "accuracy": fold_evaluation.accuracy,
                    "macro_f1": fold_evaluation.macro_f1,
                }
            )
    oof_rows = [row for _ in range(repeats) for row in rows]
    pooled_p = probabilities.reshape(-1, len(classes))
    pooled = evaluate(
        np.array([classes.index(r.label) for r in oof_rows]),
        pooled_p,
        classes,
        [r.path for r in oof_rows],
        [group_of(r) for r in oof_rows],
        seed=seed,
    )
    accuracies = np.array([f["accuracy"] for f in per_fold])
    summary = {
        "folds": folds,
        "repeats": repeats,
        "images": len(rows),
        "per_fold": per_fold,
        "fold_accuracy_mean": float(accuracies.mean()),
        "fold_accuracy_sd": float(accuracies.std(ddof=1)),
    }
    return Evaluation.from_json({**pooled.to_json(), "cv": summary}), oof_rows, pooled_p

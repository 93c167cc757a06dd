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

from breedscope.core.atomic import atomic_path
from breedscope.core.errors import ConfigError
from breedscope.core.progress import console
from breedscope.data.manifest import Manifest, Row
from breedscope.evaluation.metrics import Evaluation, evaluate_rows
from breedscope.runs import tracking

if TYPE_CHECKING:
    from breedscope.config.settings import RunConfig
    from breedscope.runs.rundir import RunDir
    from breedscope.training.job import Job


def summary(config: RunConfig) -> str:
    """What a cross-validated run does, in one sentence."""
    folds, repeats = config.cv.folds, config.cv.repeats
    return (
        f"Cross-validation: {folds} grouped, stratified folds"
        + (f", repeated {repeats} times" if repeats > 1 else "")
        + f"; each fold trains {config.train.epochs} epochs on the other folds (no validation split, so "
        "no early stopping) and tests its own images, so every image is tested once per repeat."
    )


def cost_note(config: RunConfig) -> str | None:
    """A warning when cross-validation cannot reuse cached features: a trained or fine-tuned
    backbone runs every image through itself again in every fold."""
    folds = config.cv.folds
    if not folds or not (config.train.fine_tune_layers or config.model.train_base):
        return None
    heads = folds * config.cv.repeats
    what = "fine-tunes the backbone" if config.train.fine_tune_layers else "trains the whole backbone"
    return (
        f"--cv {folds} with {config.cv.repeats} repeat(s) {what} {heads} times, and cached features "
        f"cannot stand in for it: expect about {heads} times the training time of one run "
        "(without fine-tuning, the folds reuse one extraction)."
    )


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


def as_pool(manifest: Manifest, folds: int) -> Manifest:
    """The manifest of a cross-validated run: every row in the test split (each is tested once per
    repeat); warnings about the train/val/test split it no longer has are dropped.

    A class of fewer groups (images, or patients) than ``folds`` cannot be tested in every fold:
    it is left out, with a warning naming it and the ``--cv`` that would keep it, as a class too
    small for a split is (docs/datasets: "left out of the manifest with a warning, never a
    crash"). Decided here, before any run directory exists."""
    groups: dict[str, set[str]] = {}
    for row in manifest.rows:
        groups.setdefault(row.label, set()).add(group_of(row))
    small = {label: len(found) for label, found in sorted(groups.items()) if len(found) < folds}
    warnings = [w for w in manifest.header.get("warnings", []) if "split has no images" not in w]
    for label, count in small.items():
        warnings.append(
            f"class '{label}' has {count} group(s) of images, too few to test in each of {folds} folds; "
            f"left out (--cv {max(2, count)} would keep it)"
        )
    kept = [replace(row, split="test") for row in manifest.rows if row.label not in small]
    if len({row.label for row in kept}) < 2:
        raise ConfigError(
            f"--cv {folds} leaves fewer than two classes: "
            + ", ".join(f"'{label}' has {count} group(s)" for label, count in small.items())
            + f"; choose --cv {max(2, min(len(found) for found in groups.values()))} or fewer."
        )
    header = {**manifest.header, "warnings": warnings}
    pool = Manifest(kept, header)
    header["counts"] = pool.counts()  # the split's counts no longer hold
    header["classes"] = pool.classes
    return pool


def fold_manifest(manifest: Manifest, rows: list[Row], assignment: np.ndarray, fold: int) -> Manifest:
    """The manifest one fold trains and tests on: its fold is the test split, the rest train."""
    split_rows = [
        replace(row, split="test" if f == fold else "train") for row, f in zip(rows, assignment, strict=True)
    ]
    return Manifest(split_rows, dict(manifest.header))


def seed_fold(seed: int, repeat: int, fold: int) -> None:
    """Seed every generator from (seed, repeat, fold) before a fold trains: its head's initial
    weights then do not depend on which folds ran before it in this process, so a resumed
    cross-validation (finished folds read back, not trained) equals an uninterrupted one."""
    import keras

    keras.utils.set_random_seed(int(np.random.default_rng([seed, repeat, fold]).integers(2**31 - 1)))


def _fold(job: Job, assignment: np.ndarray, fold: int, fold_run: RunDir) -> tuple[Evaluation, np.ndarray]:
    """One fold's evaluation and test probabilities, trained in ``fold_run`` on the other folds;
    a fold finished before an interruption is read back, not trained again."""
    from breedscope.training.trainer import train

    manifest, seed = job.manifest, job.config.train.seed
    finished = fold_run.finished_evaluation()
    if finished is not None:
        return finished, fold_run.probabilities()
    fold_run.path.mkdir(parents=True, exist_ok=True)
    fold_job = replace(job, manifest=fold_manifest(manifest, manifest.rows, assignment, fold), run=fold_run)
    probabilities = train(fold_job).test_probabilities
    tested = [row for row, f in zip(manifest.rows, assignment, strict=True) if f == fold]
    evaluation = evaluate_rows(tested, probabilities, manifest.classes, seed)
    fold_run.write_probabilities(probabilities)
    fold_run.write_evaluation(evaluation)
    return evaluation, probabilities


def cross_validate(job: Job) -> tuple[Evaluation, list[Row], np.ndarray]:
    """Train and test every fold of every repeat of ``job`` (whose manifest is the pool); return
    the pooled evaluation, the out-of-fold rows and their probabilities (repeat by repeat, in
    manifest order)."""
    config, manifest = job.config, job.manifest
    folds, repeats, seed = config.cv.folds, config.cv.repeats, config.train.seed
    assert folds is not None
    rows, classes = manifest.rows, manifest.classes
    table = assign_folds(rows, folds, repeats, seed)
    write_folds(job.run.folds_table, rows, table)

    probabilities = np.zeros((repeats, len(rows), len(classes)), dtype=np.float32)
    per_fold = []
    for repeat in range(repeats):
        for fold in range(folds):
            console.print(f"Cross-validation: repeat {repeat + 1} of {repeats}, fold {fold + 1} of {folds}.")
            seed_fold(seed, repeat, fold)
            fold_run = job.run.fold(repeat + 1, fold + 1)
            with tracking.fold(f"repeat{repeat + 1}-fold{fold + 1}"):
                evaluation, fold_p = _fold(job, table[repeat], fold, fold_run)
            probabilities[repeat, table[repeat] == fold] = fold_p
            per_fold.append(
                {
                    "repeat": repeat + 1,
                    "fold": fold + 1,
                    "n_test": evaluation.n_test,
                    "accuracy": evaluation.accuracy,
                    "macro_f1": evaluation.macro_f1,
                }
            )
    oof_rows = [row for _ in range(repeats) for row in rows]
    pooled_p = probabilities.reshape(-1, len(classes))
    pooled = evaluate_rows(oof_rows, pooled_p, classes, seed)
    accuracies = np.array([f["accuracy"] for f in per_fold])
    summary = {
        "folds": folds,
        "repeats": repeats,
        "images": len(rows),
        "per_fold": per_fold,
        "fold_accuracy_mean": float(accuracies.mean()),
        "fold_accuracy_sd": float(accuracies.std(ddof=1)),
    }
    return pooled.with_extra(cv=summary), oof_rows, pooled_p

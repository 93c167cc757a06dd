"""``--operating-point``: a run's threshold, chosen where the test never looks.

On the validation split's predictions when the split has validation images; otherwise on
out-of-fold predictions of the training split: its images dealt into grouped, stratified folds
(``decision.folds``), a head trained on the others for each (on the cached features, as
cross-validation does), in ``RUN_DIR/operating_point/``; under ``--cv``, each fold's threshold
on out-of-fold predictions of that fold's training part. Never on the images it is tested on.
The test figures at the threshold carry grouped bootstrap intervals.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from breedscope.config.settings import RunConfig
from breedscope.config.targets import Target
from breedscope.core.errors import ConfigError
from breedscope.core.progress import console
from breedscope.data.manifest import Manifest, Row
from breedscope.evaluation.operating_point import (
    OperatingPoint,
    at_threshold,
    choose_threshold,
    operating_point,
)
from breedscope.pipeline import crossval
from breedscope.runs import tracking
from breedscope.runs.rundir import OPERATING_POINT, write_predictions

if TYPE_CHECKING:
    from breedscope.training.job import Job
    from breedscope.training.trainer import TrainResult


def positive_class(config: RunConfig, classes: list[str]) -> str:
    """The class called positive: ``decision.positive``, or a binary set's second class."""
    positive = config.decision.positive
    if positive is None:
        if len(classes) != 2:
            raise ConfigError(
                f"--operating-point needs the class a screening calls positive among {len(classes)} "
                f"classes; name it with --positive (one of {', '.join(classes)})."
            )
        return classes[1]
    if positive not in classes:
        raise ConfigError(
            f"--positive '{positive}' is not a class of this run; its classes are {', '.join(classes)}."
        )
    return positive


def _small_classes(rows: list[Row], folds: int) -> dict[str, int]:
    """Classes of ``rows`` with fewer groups than ``folds``, and how many they have."""
    groups: dict[str, set[str]] = {}
    for row in rows:
        groups.setdefault(row.label, set()).add(crossval.group_of(row))
    return {label: len(found) for label, found in sorted(groups.items()) if len(found) < folds}


def _training_parts(config: RunConfig, manifest: Manifest) -> list[list[Row]]:
    """Each cross-validation fold's training part (every repeat's), as crossval deals them."""
    cv = config.cv
    table = crossval.assign_folds(manifest.rows, cv.folds, cv.repeats, config.train.seed)
    return [
        [row for row, f in zip(manifest.rows, table[repeat], strict=True) if f != fold]
        for repeat in range(cv.repeats)
        for fold in range(cv.folds)
    ]


def check(config: RunConfig, manifest: Manifest) -> None:
    """Refuse, before any run directory exists, an operating point this run cannot choose: no
    positive class, or training images too few for out-of-fold predictions where there is no
    validation split (a split without one, or each fold of a cross-validation)."""
    if config.decision.operating_point is None:
        return
    positive_class(config, manifest.classes)
    folds = config.decision.folds
    if config.cv.folds:
        parts, where = _training_parts(config, manifest), "each cross-validation fold's training part"
    elif manifest.split("val"):
        return
    else:
        parts, where = [manifest.split("train")], "the training split"
    small: dict[str, int] = {}
    for part in parts:
        for label, count in _small_classes(part, folds).items():
            small[label] = min(count, small.get(label, count))
    if small:
        named = ", ".join(f"'{label}' has {count}" for label, count in small.items())
        raise ConfigError(
            f"The threshold is chosen on {folds}-fold out-of-fold predictions of {where}, but {named} "
            "group(s) of training images there, too few; give the split validation images "
            "(--split 0.7,0.15,0.15, without --cv) or a larger dataset."
        )


def _scores(probabilities: np.ndarray, rows: list[Row], classes: list[str], positive: str):
    """(is-positive, score) of ``rows``: one class against the rest."""
    index = classes.index(positive)
    is_positive = np.array([row.label == positive for row in rows], dtype=bool)
    # As stored in the predictions files (six decimals), so that anyone recomputes the same calls.
    return is_positive, np.round(np.asarray(probabilities, dtype=np.float64)[:, index], 6)


def _out_of_fold(job: Job, quiet: bool = False) -> tuple[list[Row], np.ndarray]:
    """The out-of-fold probabilities of ``job``'s training split, from one head per fold, trained
    in ``RUN_DIR/operating_point/`` of the job's run directory."""
    config = job.config
    folds = config.decision.folds
    if not quiet:
        console.print(
            f"Choosing the threshold on out-of-fold predictions of the training split: {folds} heads, "
            "each trained on the other folds."
        )
    train = [replace(row, split="test") for row in job.manifest.split("train")]
    pool = Manifest(train, dict(job.manifest.header))
    fold_config = config.model_copy(
        update={"cv": config.cv.model_copy(update={"folds": folds, "repeats": 1})}
    )
    fold_job = replace(job, config=fold_config, manifest=pool, run=job.run.operating_point_folds())
    with tracking.fold(OPERATING_POINT):
        _, rows, probabilities = crossval.cross_validate(fold_job)
    write_predictions(job.run.operating_point_predictions, rows, job.manifest.classes, probabilities)
    return rows, probabilities


def choose(job: Job, result: TrainResult, groups: list[str] | None) -> OperatingPoint:
    """The run's operating point: chosen on validation (or out-of-fold) predictions, measured on
    the test split's (``result``)."""
    config, manifest = job.config, job.manifest
    classes = manifest.classes
    positive = positive_class(config, classes)
    target = Target.parse(config.decision.operating_point)
    if result.val_probabilities is not None:
        chosen_on, rows, probabilities = "validation", manifest.split("val"), result.val_probabilities
        job.run.operating_point_predictions.parent.mkdir(exist_ok=True)
        write_predictions(job.run.operating_point_predictions, rows, classes, probabilities)
    else:
        chosen_on, (rows, probabilities) = "out-of-fold", _out_of_fold(job)
    choosing = _scores(probabilities, rows, classes, positive)
    test = _scores(result.test_probabilities, manifest.split("test"), classes, positive)
    return operating_point(target, positive, chosen_on, choosing, test, groups, config.train.seed)


def choose_within_folds(job: Job, rows: list[Row], probabilities: np.ndarray) -> OperatingPoint:
    """A cross-validated run's operating point: each fold's threshold chosen on out-of-fold
    predictions of that fold's training part only (a nested cross-validation, on the cached
    features), each fold's test images called at their fold's threshold, the figures pooled."""
    config, manifest = job.config, job.manifest
    classes, cv = manifest.classes, config.cv
    positive = positive_class(config, classes)
    target = Target.parse(config.decision.operating_point)
    table = crossval.assign_folds(manifest.rows, cv.folds, cv.repeats, config.train.seed)
    console.print(
        f"Choosing each fold's threshold on {config.decision.folds}-fold out-of-fold predictions of its "
        "training part."
    )
    thresholds = np.empty(table.shape, dtype=np.float64)
    for repeat in range(cv.repeats):
        for fold in range(cv.folds):
            fold_run = job.run.fold(repeat + 1, fold + 1)
            fold_job = replace(
                job,
                manifest=crossval.fold_manifest(manifest, manifest.rows, table[repeat], fold),
                run=fold_run,
            )
            with tracking.fold(f"repeat{repeat + 1}-fold{fold + 1}"):
                inner_rows, inner = _out_of_fold(fold_job, quiet=True)
            chosen = choose_threshold(*_scores(inner, inner_rows, classes, positive), target)
            thresholds[repeat, table[repeat] == fold] = chosen
    positive_test, scores = _scores(probabilities, rows, classes, positive)
    per_image = thresholds.reshape(-1)  # the pooled rows are repeat by repeat, in manifest order
    groups = [row.group for row in rows] if config.split.grouped else None
    figures = at_threshold(positive_test, scores, per_image, groups, config.train.seed)
    fold_thresholds = tuple(
        float(thresholds[r, table[r] == f][0]) for r in range(cv.repeats) for f in range(cv.folds)
    )
    return OperatingPoint(
        float(np.median(fold_thresholds)),
        target,
        positive,
        "within-folds",
        len(manifest.rows),
        test_positives=int(positive_test.sum()),
        test_negatives=int((~positive_test).sum()),
        fold_thresholds=fold_thresholds,
        **figures,
    )

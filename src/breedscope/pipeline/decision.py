"""``--operating-point``: a run's threshold, chosen where the test never looks.

On the validation split's predictions when the split has validation images; otherwise on
out-of-fold predictions of the training split: its images dealt into grouped, stratified folds
(``decision.folds``), a head trained on the others for each (on the cached features, as
cross-validation does), in ``RUN_DIR/operating_point/``. Never on the test split. The test
split's figures at that threshold carry grouped bootstrap intervals.
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
from breedscope.evaluation.operating_point import OperatingPoint, operating_point
from breedscope.pipeline import crossval
from breedscope.runs.rundir import write_predictions

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


def check(config: RunConfig, manifest: Manifest) -> None:
    """Refuse, before any run directory exists, an operating point this run cannot choose: no
    positive class, cross-validation (which has no split to choose on), or a split without
    validation images whose training classes are too small for out-of-fold predictions."""
    if config.decision.operating_point is None:
        return
    if config.cv.folds:
        raise ConfigError(
            "--operating-point chooses a threshold on one split's validation (or out-of-fold) "
            "predictions and measures it on its test split; run it without --cv."
        )
    positive_class(config, manifest.classes)
    if manifest.split("val"):
        return
    folds = config.decision.folds
    groups: dict[str, set[str]] = {}
    for row in manifest.split("train"):
        groups.setdefault(row.label, set()).add(crossval.group_of(row))
    small = {label: len(found) for label, found in sorted(groups.items()) if len(found) < folds}
    if small:
        named = ", ".join(f"'{label}' has {count}" for label, count in small.items())
        raise ConfigError(
            f"The split has no validation images, so the threshold is chosen on {folds}-fold out-of-fold "
            f"predictions of the training split, but {named} group(s) of training images; give the split "
            "validation images (--split 0.7,0.15,0.15) or a larger dataset."
        )


def _scores(probabilities: np.ndarray, rows: list[Row], classes: list[str], positive: str):
    """(is-positive, score) of ``rows``: one class against the rest."""
    index = classes.index(positive)
    is_positive = np.array([row.label == positive for row in rows], dtype=bool)
    # As stored in the predictions files (six decimals), so that anyone recomputes the same calls.
    return is_positive, np.round(np.asarray(probabilities, dtype=np.float64)[:, index], 6)


def _out_of_fold(job: Job) -> tuple[list[Row], np.ndarray]:
    """The training split's out-of-fold probabilities, from one head per fold."""
    config = job.config
    folds = config.decision.folds
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
    _, rows, probabilities = crossval.cross_validate(fold_job)
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
    else:
        chosen_on, (rows, probabilities) = "out-of-fold", _out_of_fold(job)
    stored = job.run.operating_point_predictions
    stored.parent.mkdir(exist_ok=True)
    write_predictions(stored, rows, classes, probabilities)  # what the threshold was chosen on, to check
    choosing = _scores(probabilities, rows, classes, positive)
    test = _scores(result.test_probabilities, manifest.split("test"), classes, positive)
    return operating_point(target, positive, chosen_on, choosing, test, groups, config.train.seed)

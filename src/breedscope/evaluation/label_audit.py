"""Which labels to doubt: out-of-fold probabilities of a probe on the frozen backbone's features,
ranked by cleanlab's Datalab, which also finds outliers and near duplicates in the features.

Nothing here knows about images or run directories: features, labels and folds in, a ranked
list of :class:`Issue` out (``pipeline/audit.py`` supplies the features and writes the files).
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np

from breedscope.core.errors import ConfigError

Kind = Literal["label", "outlier", "duplicate"]
KINDS: tuple[Kind, ...] = ("label", "duplicate", "outlier")  # a row's kind: the first that applies
# The probe's inverse regularisation strength on standardised features, chosen on PBC with 30
# planted errors (docs/audit.md): strong regularisation keeps the probe from learning the few
# wrong labels of its training folds (C=1 flags 48 images, 25 of them planted; C=0.01, 38 and 27).
PROBE_C = 0.01


@dataclass(frozen=True)
class Issue:
    """One image to look at: its given and suggested label, how suspect it is (0 to 1, higher is
    more suspect: one minus cleanlab's quality score of the issue's kind) and which kind of issue."""

    index: int  # into the rows the audit was given
    given: str
    suggested: str
    score: float
    kind: Kind


def require_cleanlab() -> None:
    """Refuse in one sentence where the audit's optional dependency is absent."""
    try:
        import cleanlab  # noqa: F401
        import datasets  # noqa: F401  (Datalab's own dependency)
    except ImportError:
        raise ConfigError(
            'The label audit uses cleanlab, which is not installed: pip install "breedscope[audit]".'
        ) from None


def _probe(seed: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=PROBE_C, max_iter=5000, random_state=seed))


def out_of_fold_probabilities(
    features: np.ndarray, labels: np.ndarray, folds: np.ndarray, classes: int, seed: int
) -> np.ndarray:
    """Each image's class probabilities from a probe trained on the other folds only. A class
    absent from a fold's training part gets probability 0 there."""
    probabilities = np.zeros((len(labels), classes), dtype=np.float64)
    for fold in np.unique(folds):
        train, test = folds != fold, folds == fold
        probe = _probe(seed).fit(features[train], labels[train])
        probabilities[np.ix_(test, probe.classes_)] = probe.predict_proba(features[test])
    return probabilities


def _datalab(features: np.ndarray, labels: np.ndarray, probabilities: np.ndarray, names: list[str]):
    """cleanlab's Datalab on the features and out-of-fold probabilities; quiet, as a library."""
    from cleanlab import Datalab

    lab = Datalab(data={"label": [names[i] for i in labels]}, label_name="label", verbosity=0)
    # Datalab prints its progress and warns about what it skips; the audit reports what it found.
    with (
        warnings.catch_warnings(),
        contextlib.redirect_stdout(io.StringIO()),
        _quiet_logger("cleanlab"),
    ):
        warnings.simplefilter("ignore")
        lab.find_issues(
            features=features,
            pred_probs=probabilities,
            # One process: cleanlab's default pool forks a process that may hold threads (a
            # notebook kernel, TensorFlow's), and the audit's few thousand rows need no pool.
            issue_types={
                "label": {"clean_learning_kwargs": {"find_label_issues_kwargs": {"n_jobs": 1}}},
                "outlier": {},
                "near_duplicate": {},
            },
        )
    return lab


@contextlib.contextmanager
def _quiet_logger(name: str):
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@dataclass(frozen=True)
class Findings:
    """What the audit found: the flagged images (most suspect first), every image's label
    suspicion (0 to 1) and the out-of-fold probabilities both come from."""

    issues: list[Issue]
    label_suspicion: np.ndarray
    probabilities: np.ndarray

    def ranking(self) -> np.ndarray:
        """Every image's index, the most suspect label first (flagged or not)."""
        return np.argsort(-self.label_suspicion, kind="stable")


def find_issues(
    features: np.ndarray, labels: np.ndarray, folds: np.ndarray, names: list[str], seed: int
) -> Findings:
    """The images whose label, place among their class, or near duplicate is suspect."""
    require_cleanlab()
    if len(np.unique(folds)) < 2:
        raise ConfigError("The label audit needs at least two folds of images; use --cv 2 or more.")
    probabilities = out_of_fold_probabilities(features, labels, folds, len(names), seed)
    lab = _datalab(features, labels, probabilities, names)
    suggested = probabilities.argmax(axis=1)
    flagged: dict[int, Issue] = {}
    for kind in KINDS:
        for index, score in _flagged(lab, kind, labels):
            if index not in flagged:
                flagged[index] = Issue(index, names[labels[index]], names[suggested[index]], score, kind)
    issues = sorted(flagged.values(), key=lambda issue: (-issue.score, issue.index))
    suspicion = 1.0 - lab.get_issues("label")["label_score"].to_numpy(dtype=np.float64)
    return Findings(issues, suspicion, probabilities)


def _flagged(lab, kind: Kind, labels: np.ndarray) -> list[tuple[int, float]]:
    """``(index, suspicion)`` of the images Datalab flags with ``kind``; near duplicates only
    where a duplicate carries another label (same-label duplicates are the split's business:
    it keeps them in one group)."""
    if kind == "duplicate":
        table = lab.get_issues("near_duplicate")
        found = []
        columns = ("is_near_duplicate_issue", "near_duplicate_score", "near_duplicate_sets")
        for index, (flag, score, twins) in enumerate(zip(*(table[c] for c in columns), strict=True)):
            if flag and any(labels[t] != labels[index] for t in twins):
                found.append((index, 1.0 - float(score)))
        return found
    table = lab.get_issues(kind)
    flags, scores = table[f"is_{kind}_issue"].to_numpy(), table[f"{kind}_score"].to_numpy()
    return [(int(i), 1.0 - float(scores[i])) for i in np.flatnonzero(flags)]

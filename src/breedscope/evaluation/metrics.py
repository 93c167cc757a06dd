"""Evaluation on the test split, computed once and stored as JSON for every reporter.

Metrics come from scikit-learn's own functions; this module only decides which, and adds
what scikit-learn does not have: bootstrap intervals (resampling whole groups, so a patient's
images count once) and calibration bins.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from breedscope.evaluation.bootstrap import BOOTSTRAP_ROUNDS, bootstrap_interval
from breedscope.evaluation.operating_point import OperatingPoint

if TYPE_CHECKING:
    from breedscope.data.manifest import Row

MIN_CLASS_SUPPORT = 10  # below this many test images, a class's own figures are not meaningful
LISTED_CLASSES = 12  # a sentence names this many classes at most
CALIBRATION_BINS = 10


def calibration(y_true: np.ndarray, probabilities: np.ndarray, bins: int = CALIBRATION_BINS) -> dict:
    """Expected calibration error of the top-class confidence, and the reliability-diagram bins."""
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == y_true).astype(float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        mask = which == b
        if not mask.any():
            continue
        accuracy, mean_confidence = float(correct[mask].mean()), float(confidence[mask].mean())
        ece += mask.mean() * abs(accuracy - mean_confidence)
        table.append(
            {
                "low": float(edges[b]),
                "high": float(edges[b + 1]),
                "count": int(mask.sum()),
                "accuracy": accuracy,
                "confidence": mean_confidence,
            }
        )
    return {"ece": float(ece), "bins": table}


def macro_f1(
    y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, present: np.ndarray | None = None
) -> float:
    """Macro F1 from a confusion matrix, over the classes ``present`` (default: all
    ``n_classes``): scikit-learn's ``f1_score(average="macro", labels=present,
    zero_division=0)``, about a hundred times faster, for the thousand bootstrap resamples."""
    counts = np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(n_classes, -1)
    true_positive = np.diag(counts).astype(float)
    denominator = counts.sum(axis=0) + counts.sum(axis=1)  # 2TP + FP + FN
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(denominator > 0, 2 * true_positive / denominator, 0.0)
    return float((f1 if present is None else f1[present]).mean())


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(y_true == y_pred))


@dataclass(frozen=True)
class ClassMetrics:
    """One class's figures on the test split; ``support`` is how many test images it has."""

    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class Averages:
    """Precision, recall and F1 averaged over classes (macro: over the classes present)."""

    precision: float
    recall: float
    f1: float


@dataclass(frozen=True)
class Curve:
    """A ROC curve: false and true positive rates, and its area where stored per curve."""

    fpr: tuple[float, ...]
    tpr: tuple[float, ...]
    auc: float | None = None


@dataclass(frozen=True)
class CalibrationBin:
    """One bin of the reliability diagram: confidences in (``low``, ``high``]."""

    low: float
    high: float
    count: int
    accuracy: float
    confidence: float


@dataclass(frozen=True)
class ConfidentError:
    """A misclassified test image, with the confidence of its wrong prediction."""

    path: str
    true: str
    predicted: str
    confidence: float


@dataclass(frozen=True)
class FoldFigures:
    repeat: int
    fold: int
    n_test: int
    accuracy: float
    macro_f1: float


@dataclass(frozen=True)
class CrossValidation:
    """What a cross-validated run adds: the protocol and each fold's own figures."""

    folds: int
    repeats: int
    images: int
    per_fold: tuple[FoldFigures, ...]
    fold_accuracy_mean: float
    fold_accuracy_sd: float


def _averages(data: Mapping[str, Any]) -> Averages:
    return Averages(float(data["precision"]), float(data["recall"]), float(data["f1-score"]))


def _curve(data: Mapping[str, Any]) -> Curve:
    return Curve(tuple(data["fpr"]), tuple(data["tpr"]), data.get("auc"))


def _cross_validation(data: Mapping[str, Any] | None) -> CrossValidation | None:
    if not data:
        return None
    return CrossValidation(
        int(data["folds"]),
        int(data["repeats"]),
        int(data["images"]),
        tuple(FoldFigures(**fold) for fold in data["per_fold"]),
        float(data["fold_accuracy_mean"]),
        float(data["fold_accuracy_sd"]),
    )


@dataclass(frozen=True)
class Evaluation:
    """A run's test evaluation, every figure typed.

    ``evaluation.json`` is :meth:`to_json`; :meth:`from_json` reads it back (and refuses a
    mapping that lacks a figure). Reports, ``compare``, external validation and the API read
    the fields and methods here, never the stored mapping's keys.
    """

    classes: tuple[str, ...]
    n_test: int
    accuracy: float
    balanced_accuracy: float
    macro: Averages
    weighted: Averages
    per_class: Mapping[str, ClassMetrics]
    log_loss: float
    ece: float
    calibration_bins: tuple[CalibrationBin, ...]
    confusion_matrix: list[list[int]]  # rows are true classes, columns predicted ones
    confusion_matrix_normalised: list[list[float]]  # each row divided by its true class's images
    interval_method: str
    intervals: Mapping[str, tuple[float, float]]  # 95% bootstrap: accuracy, macro_f1
    most_confident_errors: tuple[ConfidentError, ...]
    absent_classes: tuple[str, ...] = ()  # classes without a test image (external sets)
    roc_auc: float | None = None  # binary: of the positive class; otherwise one-vs-rest, macro
    roc_curve: Curve | None = None  # binary sets
    roc_curves: Mapping[str, Curve] = field(default_factory=dict)  # one-vs-rest, per class
    positive_class: str | None = None  # binary sets: the second class
    sensitivity: float | None = None
    specificity: float | None = None
    cv: CrossValidation | None = None
    training: Mapping[str, Any] | None = None  # how training went (epochs, runtime), when trained
    operating_point: OperatingPoint | None = None  # with --operating-point: the threshold and its figures
    data: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Evaluation:
        intervals = data["intervals"]
        return cls(
            classes=tuple(data["classes"]),
            n_test=int(data["n_test"]),
            accuracy=float(data["accuracy"]),
            balanced_accuracy=float(data["balanced_accuracy"]),
            macro=_averages(data["macro"]),
            weighted=_averages(data["weighted"]),
            per_class={
                name: ClassMetrics(m["precision"], m["recall"], m["f1-score"], int(m["support"]))
                for name, m in data["per_class"].items()
            },
            log_loss=float(data["log_loss"]),
            ece=float(data["calibration"]["ece"]),
            calibration_bins=tuple(CalibrationBin(**b) for b in data["calibration"]["bins"]),
            confusion_matrix=data["confusion_matrix"],
            confusion_matrix_normalised=data["confusion_matrix_normalised"],
            interval_method=str(intervals["method"]),
            intervals={
                k: (float(v[0]), float(v[1])) for k, v in intervals.items() if k not in ("level", "method")
            },
            most_confident_errors=tuple(ConfidentError(**e) for e in data["most_confident_errors"]),
            absent_classes=tuple(data.get("absent_classes", ())),
            roc_auc=data.get("roc_auc"),
            roc_curve=_curve(data["roc_curve"]) if "roc_curve" in data else None,
            roc_curves={name: _curve(c) for name, c in data.get("roc_curves", {}).items()},
            positive_class=data.get("positive_class"),
            sensitivity=data.get("sensitivity"),
            specificity=data.get("specificity"),
            cv=_cross_validation(data.get("cv")),
            training=data.get("training"),
            operating_point=OperatingPoint.from_json(data["operating_point"])
            if "operating_point" in data
            else None,
            data=data,
        )

    @classmethod
    def read(cls, path: Path) -> Evaluation:
        return cls.from_json(json.loads(path.read_text(encoding="utf-8")))

    def to_json(self) -> dict[str, Any]:
        return dict(self.data)

    def with_extra(self, **sections: Any) -> Evaluation:
        """This evaluation with more stored sections (``training``, ``cv``), typed as well."""
        return Evaluation.from_json({**self.data, **sections})

    @property
    def macro_f1(self) -> float:
        return self.macro.f1

    @property
    def weighted_f1(self) -> float:
        return self.weighted.f1

    def interval(self, metric: str = "accuracy") -> tuple[float, float]:
        """The 95% bootstrap interval of ``accuracy`` or ``macro_f1``."""
        if metric not in self.intervals:
            raise KeyError(f"No interval for '{metric}'; intervals exist for {', '.join(self.intervals)}.")
        return self.intervals[metric]

    def figure(self, key: str) -> float | None:
        """A figure by the name studies report it under: ``accuracy``, ``balanced_accuracy``,
        ``macro_f1``, ``weighted_precision``... (``None`` for a name with no figure)."""
        if key in ("accuracy", "balanced_accuracy"):
            return getattr(self, key)
        average, _, metric = key.partition("_")
        averages = {"macro": self.macro, "weighted": self.weighted}.get(average)
        return getattr(averages, metric, None) if averages is not None else None

    def small_classes(self) -> dict[str, int]:
        """The one support rule: classes with fewer than :data:`MIN_CLASS_SUPPORT` test images,
        whose per-class figures (table rows, curves, the study's per-class F1) are marked as not
        meaningful wherever they are shown: Markdown, PDF, terminal, notebook."""
        return {name: m.support for name, m in self.per_class.items() if 0 < m.support < MIN_CLASS_SUPPORT}

    def support_cell(self, name: str) -> str:
        """A per-class table's count of test images, marked when the rule finds it too small."""
        support = self.per_class[name].support
        return f"{support} (too few)" if name in self.small_classes() else str(support)

    def most_confused_pairs(self, top: int = 15) -> list[tuple[str, str, int, float]]:
        """The ``top`` (true, predicted) pairs of different classes with the most test images, most
        first: (true class, predicted class, images, share of the true class's images)."""
        counts = np.asarray(self.confusion_matrix)
        shares = np.asarray(self.confusion_matrix_normalised)
        off = counts.copy()
        np.fill_diagonal(off, 0)
        order = np.argsort(-off, axis=None, kind="stable")[:top]
        pairs = []
        for flat in order:
            i, j = divmod(int(flat), len(self.classes))
            if off[i, j] == 0:
                break
            pairs.append((self.classes[i], self.classes[j], int(off[i, j]), float(shares[i, j])))
        return pairs

    def caveats(self) -> list[str]:
        """Sentences a reader of these figures needs (classes too small to judge)."""
        few = self.small_classes()
        return [few_images_sentence(few)] if few else []

    def summary(self) -> str:
        """One line: accuracy with its interval, macro F1 and the number of test images."""
        low, high = self.interval("accuracy")
        return (
            f"Test accuracy {self.accuracy:.4f} (95% CI {low:.3f}–{high:.3f}), "
            f"macro F1 {self.macro_f1:.4f} on {self.n_test} images."
        )


def few_images_sentence(few: Mapping[str, int]) -> str:
    """What :meth:`Evaluation.small_classes` means for a reader, in one sentence."""
    named = list(few.items())[:LISTED_CLASSES]
    listed = ", ".join(f"{name} ({count})" for name, count in named)
    if len(few) > LISTED_CLASSES:
        listed += f" and {len(few) - LISTED_CLASSES} more (marked in the per-class table)"
    return (
        f"Per-class figures are not meaningful for classes with fewer than {MIN_CLASS_SUPPORT} test "
        f"images: {listed}. One image more or less right moves such a class's recall by "
        f"{100 / max(1, min(few.values())):.0f} points or more."
    )


def _macro_over_present(y_true: np.ndarray, y_pred: np.ndarray, present: np.ndarray) -> dict[str, float]:
    """scikit-learn's macro averages over the classes in ``present`` (its ``labels``)."""
    from sklearn import metrics

    precision, recall, f1, _ = metrics.precision_recall_fscore_support(
        y_true, y_pred, labels=present.tolist(), average="macro", zero_division=0
    )
    return {
        "precision": float(precision),
        "recall": float(recall),
        "f1-score": float(f1),
        "support": float(len(y_true)),
    }


def evaluate_rows(
    rows: Sequence[Row], probabilities: np.ndarray, classes: list[str], seed: int
) -> Evaluation:
    """:func:`evaluate` for manifest rows: true classes from their labels, intervals resampling their
    groups (an image with no group is a group of its own)."""
    return evaluate(
        np.array([classes.index(r.label) for r in rows]),
        probabilities,
        classes,
        [r.path for r in rows],
        [r.group or r.path for r in rows],
        seed=seed,
    )


def evaluate(
    y_true: np.ndarray,
    probabilities: np.ndarray,
    classes: list[str],
    paths: Sequence[str],
    groups: Sequence[str] | None = None,
    seed: int = 0,
    worst: int = 12,
) -> Evaluation:
    """Every number a report shows, from true labels and predicted probabilities."""
    from sklearn import metrics

    labels = list(range(len(classes)))
    y_pred = probabilities.argmax(axis=1)
    report = metrics.classification_report(
        y_true, y_pred, labels=labels, target_names=classes, output_dict=True, zero_division=0
    )
    # Macro figures average over the classes the test images hold: a class with no test image
    # (an external set with 2 of the 5 classes) has no recall to average, and counting it as 0
    # would understate the rest. The absent classes are named instead.
    present = np.unique(y_true)
    counts = metrics.confusion_matrix(y_true, y_pred, labels=labels)
    with np.errstate(invalid="ignore", divide="ignore"):
        normalised = np.nan_to_num(counts / counts.sum(axis=1, keepdims=True))
    result: dict = {
        "classes": classes,
        "n_test": len(y_true),
        "accuracy": float(metrics.accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(metrics.balanced_accuracy_score(y_true, y_pred)),
        "per_class": {name: {k: float(v) for k, v in report[name].items()} for name in classes},
        "macro": _macro_over_present(y_true, y_pred, present),
        "weighted": {k: float(v) for k, v in report["weighted avg"].items()},
        "confusion_matrix": counts.tolist(),
        "confusion_matrix_normalised": normalised.round(6).tolist(),
        "log_loss": float(metrics.log_loss(y_true, probabilities, labels=labels)),
        "calibration": calibration(y_true, probabilities),
    }
    result["intervals"] = {
        "level": 0.95,
        "method": f"percentile bootstrap, {BOOTSTRAP_ROUNDS} rounds, resampling "
        + ("groups" if groups is not None else "images"),
        # Lists, as JSON stores them: an evaluation equals its evaluation.json read back.
        "accuracy": list(bootstrap_interval(y_true, y_pred, accuracy, groups, seed=seed)),
        "macro_f1": list(
            bootstrap_interval(
                y_true, y_pred, lambda t, p: macro_f1(t, p, len(classes), present), groups, seed=seed
            )
        ),
    }
    if len(present) < len(classes):
        result["absent_classes"] = [classes[i] for i in labels if i not in set(present.tolist())]
    if len(present) == len(classes):
        if len(classes) == 2:
            result["roc_auc"] = float(metrics.roc_auc_score(y_true, probabilities[:, 1]))
            fpr, tpr, _ = metrics.roc_curve(y_true, probabilities[:, 1])
            result["roc_curve"] = {"fpr": fpr.round(6).tolist(), "tpr": tpr.round(6).tolist()}
            tn, fp, fn, tp = counts.ravel()
            result["sensitivity"] = float(tp / (tp + fn)) if tp + fn else 0.0
            result["specificity"] = float(tn / (tn + fp)) if tn + fp else 0.0
            result["positive_class"] = classes[1]
        else:
            result["roc_auc"] = float(
                metrics.roc_auc_score(
                    y_true, probabilities, multi_class="ovr", average="macro", labels=labels
                )
            )
            result["roc_curves"] = {}
            for index, name in enumerate(classes):
                fpr, tpr, _ = metrics.roc_curve(y_true == index, probabilities[:, index])
                result["roc_curves"][name] = {
                    "fpr": fpr.round(6).tolist(),
                    "tpr": tpr.round(6).tolist(),
                    "auc": float(metrics.auc(fpr, tpr)),
                }
    wrong = np.flatnonzero(y_pred != y_true)
    wrong = wrong[np.argsort(-probabilities[wrong, y_pred[wrong]], kind="stable")][:worst]
    result["most_confident_errors"] = [
        {
            "path": paths[i],
            "true": classes[y_true[i]],
            "predicted": classes[y_pred[i]],
            "confidence": float(probabilities[i, y_pred[i]]),
        }
        for i in wrong
    ]
    return Evaluation.from_json(result)

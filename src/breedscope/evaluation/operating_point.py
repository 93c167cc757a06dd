"""An operating point: the threshold a screening model is used at, chosen for a sensitivity, a
specificity or Youden's J on predictions the test never sees, and the figures a clinician decides
with at that threshold on the test split (sensitivity, specificity, PPV, NPV), each with a
grouped bootstrap 95% interval.

A multi-class model is read as one class against the rest: the score is the positive class's
probability, and "negative" is every other class.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from breedscope.config.targets import Target
from breedscope.evaluation.bootstrap import bootstrap_interval

FIGURES = ("sensitivity", "specificity", "ppv", "npv")


def choose_threshold(positive: np.ndarray, scores: np.ndarray, target: Target) -> float:
    """The threshold (a test image is called positive when its score is at least this) that meets
    ``target`` on these predictions: the highest one whose sensitivity reaches the target, the
    lowest whose specificity does, or the one maximising sensitivity + specificity - 1."""
    from sklearn.metrics import roc_curve

    fpr, tpr, thresholds = roc_curve(positive.astype(int), scores, drop_intermediate=False)
    # scikit-learn's first threshold is +inf (no positive call): kept just above 1, which JSON can
    # hold and which still calls no image positive, not even one whose probability is 1.
    thresholds = np.minimum(thresholds, np.nextafter(1.0, 2.0))
    if target.kind == "sensitivity":
        index = int(np.flatnonzero(tpr >= target.value)[0])
    elif target.kind == "specificity":
        index = int(np.flatnonzero(fpr <= 1 - target.value)[-1])
    else:
        index = int(np.argmax(tpr - fpr))
    return float(thresholds[index])


def _rates(positive: np.ndarray, called: np.ndarray) -> dict[str, float]:
    """Sensitivity, specificity, PPV and NPV of ``called`` (NaN where a denominator is 0)."""
    tp = float(np.sum(called & positive))
    fn = float(np.sum(~called & positive))
    tn = float(np.sum(~called & ~positive))
    fp = float(np.sum(called & ~positive))
    ratio = lambda a, b: a / (a + b) if a + b else float("nan")  # noqa: E731
    return {
        "sensitivity": ratio(tp, fn),
        "specificity": ratio(tn, fp),
        "ppv": ratio(tp, fp),
        "npv": ratio(tn, fn),
    }


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float

    def to_json(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}

    def percent(self) -> str:
        if np.isnan(self.value):  # a PPV without a positive call, an NPV without a negative one
            return "not defined (no image to count)"
        return f"{self.value:.1%} (95% CI {self.low:.1%}–{self.high:.1%})"


@dataclass(frozen=True)
class OperatingPoint:
    """The threshold, what it was chosen for and on, and the test split's figures at it."""

    threshold: float
    target: Target
    positive: str
    chosen_on: Literal["validation", "out-of-fold", "within-folds"]
    chosen_images: int
    sensitivity: Estimate
    specificity: Estimate
    ppv: Estimate
    npv: Estimate
    test_positives: int
    test_negatives: int
    fold_thresholds: tuple[float, ...] = ()  # cross-validation: each fold's own (threshold: their median)

    def estimate(self, name: str) -> Estimate:
        return getattr(self, name)

    def where(self) -> str:
        """Where the threshold was chosen, in words."""
        return {
            "validation": "the validation split",
            "out-of-fold": "out-of-fold predictions of the training split",
            "within-folds": "out-of-fold predictions within each fold's training part",
        }[self.chosen_on]

    def at(self) -> str:
        """The threshold, or each fold's for a cross-validated run."""
        if not self.fold_thresholds:
            return f"{self.threshold:.3f}"
        low, high = min(self.fold_thresholds), max(self.fold_thresholds)
        return f"its fold's threshold (median {self.threshold:.3f}, {low:.3f}–{high:.3f})"

    def sentence(self) -> str:
        """The operating point as a clinician reads it."""
        # Above 1 where only "never" met the target: no probability reaches it.
        never = self.threshold > 1 and not self.fold_thresholds
        called = (
            f"Never called {self.positive}"
            if never
            else (f"Called {self.positive} when its probability is at least {self.at()}")
        )
        return (
            f"{called} (chosen on "
            f"{self.where()} for {self.target}), the model finds {self.sensitivity.percent()} of the "
            f"{self.test_positives} {self.positive} test images and clears "
            f"{self.specificity.percent()} of the {self.test_negatives} others; {self._calls()}."
        )

    def _calls(self) -> str:
        """How often its calls are right; a call it never makes (every image on one side of the
        threshold) has no predictive value, and says so."""
        if np.isnan(self.ppv.value):
            return (
                f"it calls no test image {self.positive}, and a negative call is right "
                f"{self.npv.percent()} of the time"
            )
        if np.isnan(self.npv.value):
            return f"it calls every test image {self.positive}, and is right {self.ppv.percent()} of the time"
        return (
            f"a positive call is right {self.ppv.percent()} of the time, a negative one {self.npv.percent()}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "target": self.target.to_json(),
            "positive": self.positive,
            "chosen_on": self.chosen_on,
            "chosen_images": self.chosen_images,
            **{name: self.estimate(name).to_json() for name in FIGURES},
            "test_positives": self.test_positives,
            "test_negatives": self.test_negatives,
            **({"fold_thresholds": list(self.fold_thresholds)} if self.fold_thresholds else {}),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OperatingPoint:
        target = data["target"]
        return cls(
            threshold=float(data["threshold"]),
            target=Target(target["kind"], target.get("value")),
            positive=str(data["positive"]),
            chosen_on=data["chosen_on"],
            chosen_images=int(data["chosen_images"]),
            **{name: Estimate(**{k: float(v) for k, v in data[name].items()}) for name in FIGURES},
            test_positives=int(data["test_positives"]),
            test_negatives=int(data["test_negatives"]),
            fold_thresholds=tuple(float(t) for t in data.get("fold_thresholds", ())),
        )


def at_threshold(
    positive: np.ndarray,
    scores: np.ndarray,
    threshold: float | np.ndarray,
    groups: Sequence[str] | None,
    seed: int,
) -> dict[str, Estimate]:
    """Sensitivity, specificity, PPV and NPV of calling ``scores >= threshold`` positive (one
    threshold, or one per image), each with a bootstrap 95% interval that resamples ``groups``
    (patients) or images."""
    called = scores >= threshold
    figures = _rates(positive, called)
    estimates = {}
    for name in FIGURES:
        low, high = bootstrap_interval(
            positive, called, lambda p, c, name=name: _rates(p, c)[name], groups=groups, seed=seed
        )
        estimates[name] = Estimate(figures[name], low, high)
    return estimates


def operating_point(
    target: Target,
    positive_class: str,
    chosen_on: Literal["validation", "out-of-fold"],
    choosing: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    groups: Sequence[str] | None,
    seed: int,
) -> OperatingPoint:
    """Choose the threshold on ``choosing`` (is-positive, score) and measure it on ``test``."""
    threshold = choose_threshold(*choosing, target)
    positive, scores = test
    figures = at_threshold(positive, scores, threshold, groups, seed)
    return OperatingPoint(
        threshold,
        target,
        positive_class,
        chosen_on,
        len(choosing[0]),
        test_positives=int(positive.sum()),
        test_negatives=int((~positive).sum()),
        **figures,
    )

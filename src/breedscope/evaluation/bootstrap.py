"""Percentile bootstrap intervals that resample whole groups (a patient's images count once)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

BOOTSTRAP_ROUNDS = 1000


def bootstrap_interval(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    score: Callable[[np.ndarray, np.ndarray], float],
    groups: Sequence[str] | None = None,
    rounds: int = BOOTSTRAP_ROUNDS,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``score``, resampling groups (or images) with replacement."""
    rng = np.random.default_rng(seed)
    group_ids = np.asarray(groups) if groups is not None else np.arange(len(y_true)).astype(str)
    unique, inverse = np.unique(group_ids, return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(len(unique))]
    scores = []
    for _ in range(rounds):
        picked = rng.integers(0, len(unique), size=len(unique))
        indices = np.concatenate([members[g] for g in picked])
        scores.append(score(y_true[indices], y_pred[indices]))
    tail = (1 - level) / 2
    # A ratio undefined in a resample (a PPV with no positive call) is NaN there: left out; if it
    # is undefined in every one, so is its interval.
    defined = np.asarray(scores, dtype=np.float64)
    defined = defined[~np.isnan(defined)]
    if defined.size == 0:
        return float("nan"), float("nan")
    low, high = np.quantile(defined, [tail, 1 - tail])
    return float(low), float(high)

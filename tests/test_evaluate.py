"""Metrics against values worked out by hand, and the bootstrap interval's coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest

from breedscope.evaluation.metrics import ClassMetrics, Evaluation, bootstrap_interval, evaluate

# Six test images, three classes. Predicted: 0, 0, 1, 1, 1, 0 (argmax of each row).
Y_TRUE = np.array([0, 0, 0, 1, 1, 2])
PROBABILITIES = np.array(
    [
        [0.8, 0.1, 0.1],
        [0.6, 0.3, 0.1],
        [0.3, 0.6, 0.1],
        [0.2, 0.7, 0.1],
        [0.1, 0.8, 0.1],
        [0.5, 0.2, 0.3],
    ]
)
CLASSES = ["a", "b", "c"]


@pytest.fixture(scope="module")
def evaluation() -> Evaluation:
    return evaluate(Y_TRUE, PROBABILITIES, CLASSES, paths=[f"img{i}" for i in range(6)], seed=1)


@pytest.fixture(scope="module")
def result(evaluation: Evaluation) -> dict:
    """What evaluation.json holds."""
    return evaluation.to_json()


def test_the_typed_evaluation_reads_the_figures_worked_out_by_hand(evaluation: Evaluation) -> None:
    assert evaluation.classes == ("a", "b", "c") and evaluation.n_test == 6
    assert evaluation.accuracy == pytest.approx(4 / 6)
    assert evaluation.macro_f1 == pytest.approx((2 / 3 + 0.8 + 0) / 3)
    assert evaluation.weighted_f1 == pytest.approx((3 * 2 / 3 + 2 * 0.8 + 0) / 6)
    assert evaluation.per_class["b"] == ClassMetrics(
        precision=2 / 3, recall=1.0, f1=pytest.approx(0.8), support=2
    )
    assert evaluation.per_class["c"].support == 1
    assert evaluation.confusion_matrix == [[2, 1, 0], [0, 2, 0], [1, 0, 0]]
    low, high = evaluation.interval("accuracy")
    assert 0 <= low <= evaluation.accuracy <= high <= 1
    with pytest.raises(KeyError, match="intervals exist for accuracy, macro_f1"):
        evaluation.interval("log_loss")
    assert evaluation.summary().startswith(f"Test accuracy 0.6667 (95% CI {low:.3f}–{high:.3f})")


def test_an_evaluation_survives_its_json_file(evaluation: Evaluation, tmp_path) -> None:
    import json

    (tmp_path / "evaluation.json").write_text(json.dumps(evaluation.to_json()))
    assert Evaluation.read(tmp_path / "evaluation.json") == evaluation


def test_counts_and_rates_by_hand(result: dict) -> None:
    assert result["confusion_matrix"] == [[2, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert result["accuracy"] == pytest.approx(4 / 6)
    # recall a = 2/3, b = 2/2, c = 0/1
    assert result["balanced_accuracy"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    a, b, c = (result["per_class"][k] for k in CLASSES)
    assert (a["precision"], a["recall"], a["f1-score"]) == pytest.approx((2 / 3, 2 / 3, 2 / 3))
    assert (b["precision"], b["recall"], b["f1-score"]) == pytest.approx((2 / 3, 1.0, 0.8))
    assert (c["precision"], c["recall"], c["f1-score"], c["support"]) == pytest.approx((0, 0, 0, 1))
    assert result["macro"]["f1-score"] == pytest.approx((2 / 3 + 0.8 + 0) / 3)
    assert result["weighted"]["f1-score"] == pytest.approx((3 * 2 / 3 + 2 * 0.8 + 0) / 6)
    assert result["confusion_matrix_normalised"][0] == pytest.approx([2 / 3, 1 / 3, 0])


def test_log_loss_and_calibration_by_hand(result: dict) -> None:
    expected = -sum(math.log(p) for p in (0.8, 0.6, 0.3, 0.7, 0.8, 0.3)) / 6
    assert result["log_loss"] == pytest.approx(expected)
    # Bins (0.4,0.5]: one wrong at 0.5; (0.5,0.6]: right and wrong at 0.6; (0.6,0.7]: right at
    # 0.7; (0.7,0.8]: two right at 0.8.
    ece = (1 * 0.5 + 2 * 0.1 + 1 * 0.3 + 2 * 0.2) / 6
    assert result["calibration"]["ece"] == pytest.approx(ece)
    assert [b["count"] for b in result["calibration"]["bins"]] == [1, 2, 1, 2]


def test_most_confident_errors_come_first(result: dict) -> None:
    errors = result["most_confident_errors"]
    assert [(e["path"], e["true"], e["predicted"]) for e in errors] == [
        ("img2", "a", "b"),
        ("img5", "c", "a"),
    ]
    assert errors[0]["confidence"] == pytest.approx(0.6)


def test_binary_run_has_sensitivity_specificity_and_roc() -> None:
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    p1 = np.array([0.1, 0.2, 0.7, 0.3, 0.8, 0.9, 0.4, 0.6])
    out = evaluate(
        y, np.stack([1 - p1, p1], axis=1), ["NORMAL", "PNEUMONIA"], paths=[str(i) for i in range(8)]
    ).to_json()
    assert out["sensitivity"] == pytest.approx(3 / 4)  # positives at 0.8, 0.9, 0.6 found; 0.4 missed
    assert out["specificity"] == pytest.approx(3 / 4)  # negative at 0.7 flagged
    # AUC: of 16 (positive, negative) pairs, the positive scores higher in 14.
    assert out["roc_auc"] == pytest.approx(14 / 16)
    assert out["roc_curve"]["fpr"][0] == 0 and out["roc_curve"]["tpr"][-1] == 1


def test_bootstrap_interval_covers_the_truth_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(0)
    truth, n, trials, covered = 0.8, 100, 200, 0
    for trial in range(trials):
        correct = rng.random(n) < truth
        y_true = np.zeros(n, dtype=int)
        y_pred = np.where(correct, 0, 1)
        low, high = bootstrap_interval(
            y_true, y_pred, lambda t, p: float(np.mean(t == p)), rounds=400, seed=trial
        )
        covered += low <= truth <= high
    assert 0.89 <= covered / trials <= 0.99


def test_group_bootstrap_is_wider_when_a_group_is_one_observation() -> None:
    rng = np.random.default_rng(3)
    group_correct = rng.random(20) < 0.7
    correct = np.repeat(group_correct, 5)  # five images per patient, all right or all wrong
    y_true = np.zeros(100, dtype=int)
    y_pred = np.where(correct, 0, 1)
    groups = [f"p{i // 5}" for i in range(100)]
    score = lambda t, p: float(np.mean(t == p))  # noqa: E731
    by_image = bootstrap_interval(y_true, y_pred, score, rounds=500)
    by_group = bootstrap_interval(y_true, y_pred, score, groups=groups, rounds=500)
    assert (by_group[1] - by_group[0]) > 1.5 * (by_image[1] - by_image[0])


def test_fast_macro_f1_equals_scikit_learn() -> None:
    from sklearn.metrics import f1_score

    from breedscope.evaluation.metrics import macro_f1

    rng = np.random.default_rng(5)
    for _ in range(50):
        k = int(rng.integers(2, 7))
        y_true = rng.integers(0, k, size=int(rng.integers(5, 60)))
        y_pred = np.where(rng.random(len(y_true)) < 0.6, y_true, rng.integers(0, k, size=len(y_true)))
        expected = f1_score(y_true, y_pred, labels=list(range(k)), average="macro", zero_division=0)
        assert macro_f1(y_true, y_pred, k) == pytest.approx(expected)


def test_one_vs_rest_roc_per_class_by_hand(result: dict) -> None:
    curves = result["roc_curves"]
    assert list(curves) == CLASSES
    # Class a: positives score 0.8, 0.6, 0.3 against negatives 0.2, 0.1, 0.5: 8 of 9 pairs ordered.
    assert curves["a"]["auc"] == pytest.approx(8 / 9)
    # Class c: its one positive scores 0.3, every negative 0.1.
    assert curves["c"]["auc"] == pytest.approx(1.0)

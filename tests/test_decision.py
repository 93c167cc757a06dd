"""The operating point (evaluation/operating_point.py, pipeline/decision.py): a threshold chosen
for a sensitivity, a specificity or Youden's J on validation or out-of-fold predictions, never
on the test split, and the test figures at it with grouped bootstrap intervals."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from breedscope.config.targets import Target
from breedscope.evaluation.bootstrap import bootstrap_interval
from breedscope.evaluation.operating_point import choose_threshold
from tests.helpers import TINY, cli, write_tree

pytestmark = pytest.mark.whole_run


def _brute_force_threshold(positive: np.ndarray, scores: np.ndarray, target: Target) -> float:
    """The threshold by its definition, over every candidate: calling ``score >= t`` positive."""
    candidates = sorted({*scores.tolist(), 1.0})
    sensitivity = {t: (scores[positive] >= t).mean() for t in candidates}
    specificity = {t: (scores[~positive] < t).mean() for t in candidates}
    if target.kind == "sensitivity":
        return max(t for t in candidates if sensitivity[t] >= target.value)
    if target.kind == "specificity":
        return min(t for t in candidates if specificity[t] >= target.value)
    best = max(sensitivity[t] + specificity[t] for t in candidates)
    return max(t for t in candidates if sensitivity[t] + specificity[t] == best)


@pytest.mark.parametrize("target", ["sensitivity=0.9", "sensitivity=0.5", "specificity=0.8", "youden"])
def test_the_threshold_meets_its_target_by_definition(target: str) -> None:
    rng = np.random.default_rng(3)
    positive = rng.random(200) < 0.4
    scores = np.clip(rng.normal(0.35 + 0.3 * positive, 0.15), 0, 1).round(4)
    parsed = Target.parse(target)
    assert choose_threshold(positive, scores, parsed) == pytest.approx(
        _brute_force_threshold(positive, scores, parsed)
    )


@pytest.mark.parametrize("text", ["sensitivity=1.5", "specificity=0", "recall=0.9", "sensitivity", ""])
def test_a_target_outside_its_forms_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        Target.parse(text)


def _binary_dataset(tmp_path: Path, name: str = "pairs", per_class: int = 24) -> str:
    tree = write_tree(tmp_path / "tree", classes=2, per_class=per_class, size=40)
    assert cli("fetch", "folder", "--from", str(tree), "--name", name).returncode == 0
    return name


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _recompute(run: Path, point: dict) -> None:
    """The stored threshold from the stored choosing predictions, and the stored test figures
    and intervals from predictions.csv and the manifest's groups."""
    positive = point["positive"]
    chosen = _rows(run / "operating_point" / "predictions.csv")
    tested = _rows(run / "predictions.csv")
    # Never chosen on a test image.
    assert not {r["path"] for r in chosen} & {r["path"] for r in tested}
    target = Target(point["target"]["kind"], point["target"]["value"])
    is_positive = np.array([r["label"] == positive for r in chosen])
    scores = np.array([float(r[f"p_{positive}"]) for r in chosen])
    assert point["threshold"] == pytest.approx(_brute_force_threshold(is_positive, scores, target), abs=1e-6)

    truth = np.array([r["label"] == positive for r in tested])
    called = np.array([float(r[f"p_{positive}"]) for r in tested]) >= point["threshold"]
    tp, fn = (called & truth).sum(), (~called & truth).sum()
    tn, fp = (~called & ~truth).sum(), (called & ~truth).sum()
    assert point["sensitivity"]["value"] == pytest.approx(tp / (tp + fn))
    assert point["specificity"]["value"] == pytest.approx(tn / (tn + fp))
    assert point["test_positives"] == truth.sum() and point["test_negatives"] == (~truth).sum()
    groups = {r["path"]: r["group"] for r in _rows(run / "manifest.csv")}
    low, high = bootstrap_interval(
        truth,
        called,
        lambda t, c: (c & t).sum() / t.sum() if t.any() else np.nan,
        [groups[r["path"]] for r in tested],
        seed=42,
    )
    assert (point["sensitivity"]["low"], point["sensitivity"]["high"]) == pytest.approx((low, high))


def test_a_threshold_chosen_on_validation_predictions_is_measured_on_the_test_split(tmp_path: Path) -> None:
    dataset = _binary_dataset(tmp_path)
    runs = tmp_path / "runs"
    result = cli(
        "run",
        "--dataset",
        dataset,
        *TINY,
        "--epochs",
        "2",
        "--operating-point",
        "sensitivity=0.9",
        "--runs-dir",
        str(runs),
    )
    assert result.returncode == 0, result.stderr
    run = runs / dataset / "run"
    point = json.loads((run / "evaluation.json").read_text())["operating_point"]
    assert point["chosen_on"] == "validation" and point["positive"] == "class_1"
    validation = {r["path"] for r in _rows(run / "manifest.csv") if r["split"] == "val"}
    assert {r["path"] for r in _rows(run / "operating_point" / "predictions.csv")} == validation
    _recompute(run, point)
    # The terminal, the report and the notebook's display say it in words.
    printed = " ".join((result.stdout + result.stderr).split())
    assert "Called class_1 when its probability is at least" in printed
    report = (run / "report.md").read_text()
    assert "## Operating point" in report and "figures/operating_point.png" in report
    assert (run / "figures" / "operating_point.png").is_file()
    # predict decides each image at the threshold.
    out = tmp_path / "out.csv"
    images = tmp_path / "tree" / "class_0"
    assert cli("predict", str(run), str(images), "--top", "2", "--csv", str(out)).returncode == 0
    for row in _rows(out):  # columns class_1/probability_1 hold the top class, _2 the other
        p = {row[f"class_{rank}"]: float(row[f"probability_{rank}"]) for rank in (1, 2)}
        assert row["decision"] == ("class_1" if p["class_1"] >= point["threshold"] else "not class_1")
    compared = cli("compare", str(run), str(run))
    assert "sensitivity / specificity at the operating point" in " ".join(compared.stdout.split())
    # An ONNX export records the threshold and the positive class, readable by onnxruntime alone.
    onnxruntime = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    exported = cli("export", str(run), "--format", "onnx")
    assert exported.returncode == 0, exported.stderr
    session = onnxruntime.InferenceSession(
        str(run / "export" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    assert session.get_outputs()[0].name == "probabilities"
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["positive_class"] == "class_1" and float(meta["threshold"]) == pytest.approx(
        point["threshold"]
    )
    assert meta["labels"].split("\n") == ["class_0", "class_1"] and "Operating point" in meta["description"]
    assert "Operating point" in (run / "export" / "MODEL_CARD.md").read_text()


def test_without_validation_images_the_threshold_comes_from_out_of_fold_predictions(tmp_path: Path) -> None:
    dataset = _binary_dataset(tmp_path)
    runs = tmp_path / "runs"
    result = cli(
        "run",
        "--dataset",
        dataset,
        *TINY,
        "--split",
        "0.7,0,0.3",
        "--epochs",
        "1",
        "--operating-point",
        "specificity=0.8",
        "--positive",
        "class_0",
        "--runs-dir",
        str(runs),
    )
    assert result.returncode == 0, result.stderr
    run = runs / dataset / "run"
    point = json.loads((run / "evaluation.json").read_text())["operating_point"]
    assert point["chosen_on"] == "out-of-fold" and point["positive"] == "class_0"
    training = {r["path"] for r in _rows(run / "manifest.csv") if r["split"] == "train"}
    assert {r["path"] for r in _rows(run / "operating_point" / "predictions.csv")} == training
    assert len(list((run / "operating_point" / "folds").iterdir())) == 5
    _recompute(run, point)


def test_under_cross_validation_each_folds_threshold_is_chosen_within_its_training_part(
    tmp_path: Path,
) -> None:
    dataset = _binary_dataset(tmp_path)
    runs = tmp_path / "runs"
    result = cli(
        "run",
        "--dataset",
        dataset,
        *TINY,
        "--epochs",
        "1",
        "--cv",
        "3",
        "--operating-point",
        "youden",
        "--runs-dir",
        str(runs),
    )
    assert result.returncode == 0, result.stderr
    run = runs / dataset / "run"
    point = json.loads((run / "evaluation.json").read_text())["operating_point"]
    assert point["chosen_on"] == "within-folds" and len(point["fold_thresholds"]) == 3
    fold_of = {r["path"]: int(r["repeat_1"]) for r in _rows(run / "folds.csv")}
    for fold, threshold in enumerate(point["fold_thresholds"], start=1):
        chosen = _rows(run / "folds" / f"repeat1-fold{fold}" / "operating_point" / "predictions.csv")
        # Chosen on the other folds' images only, by its definition.
        assert {r["path"] for r in chosen} == {p for p, f in fold_of.items() if f != fold}
        is_positive = np.array([r["label"] == "class_1" for r in chosen])
        scores = np.array([float(r["p_class_1"]) for r in chosen])
        assert threshold == pytest.approx(
            _brute_force_threshold(is_positive, scores, Target("youden")), abs=1e-6
        )
    # The pooled figures: each image called at its own fold's threshold.
    tested = _rows(run / "predictions.csv")
    truth = np.array([r["label"] == "class_1" for r in tested])
    limits = np.array([point["fold_thresholds"][fold_of[r["path"]] - 1] for r in tested])
    called = np.array([float(r["p_class_1"]) for r in tested]) >= limits
    assert point["sensitivity"]["value"] == pytest.approx((called & truth).sum() / truth.sum())
    assert point["specificity"]["value"] == pytest.approx((~called & ~truth).sum() / (~truth).sum())
    assert "## Operating point" in (run / "report.md").read_text()


@pytest.mark.parametrize(
    "flags,expected",
    [
        (["--operating-point", "sensitivity=1.2"], "strictly between 0 and 1"),
        (["--operating-point", "recall=0.9"], "is not an operating point"),
        (["--operating-point", "youden", "--positive", "class_9"], "--positive 'class_9' is not a class"),
        (["--operating-point", "youden", "--cv", "2"], "each cross-validation fold's training part"),
        (["--operating-point", "youden", "--split", "0.5,0,0.5"], "group(s) of training images"),
    ],
)
def test_an_operating_point_the_run_cannot_choose_is_one_sentence(
    flags: list[str], expected: str, tmp_path: Path
) -> None:
    dataset = _binary_dataset(tmp_path, per_class=6)
    runs = tmp_path / "runs"
    result = cli("run", "--dataset", dataset, *TINY, *flags, "--runs-dir", str(runs))
    assert result.returncode == 2, result.stdout + result.stderr
    text = " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr and expected in text, text
    assert not (runs / dataset).exists()


def test_a_multi_class_operating_point_needs_a_positive_class(tree_dataset: str, tmp_path: Path) -> None:
    result = cli(
        "run", "--dataset", tree_dataset, *TINY, "--operating-point", "youden", "--runs-dir", str(tmp_path)
    )
    assert result.returncode == 2 and "name it with --positive" in " ".join(result.stderr.split())


def test_a_specificity_no_threshold_reaches_calls_nothing_positive_not_even_a_certain_image() -> None:
    # The only threshold meeting specificity 0.99 here is above every score; it used to be
    # stored as 1.0, which called the negative image scored 1.0 positive (specificity 0.5).
    from breedscope.evaluation.operating_point import at_threshold

    positive = np.array([False, True, True, False])
    scores = np.array([1.0, 0.9, 0.8, 0.1])
    threshold = choose_threshold(positive, scores, Target("specificity", 0.99))
    assert threshold > 1.0 and not (scores >= threshold).any()
    assert at_threshold(positive, scores, threshold, None, seed=0)["specificity"].value == 1.0


def test_a_point_that_calls_nothing_positive_says_so_in_words() -> None:
    from breedscope.evaluation.operating_point import Estimate, OperatingPoint

    nan = float("nan")
    none, all_, undefined = Estimate(0.0, 0.0, 0.0), Estimate(1.0, 1.0, 1.0), Estimate(nan, nan, nan)
    point = OperatingPoint(
        np.nextafter(1.0, 2.0), Target("youden"), "PNEUMONIA", "validation", 10,
        none, all_, undefined, Estimate(0.5, 0.2, 0.75), 8, 8,
    )  # fmt: skip
    sentence = point.sentence()
    assert sentence.startswith("Never called PNEUMONIA (chosen on") and "nan" not in sentence
    assert "it calls no test image PNEUMONIA, and a negative call is right 50.0%" in sentence

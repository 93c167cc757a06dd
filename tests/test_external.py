"""External validation (pipeline/external.py): a finished run evaluated on another fetched dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import cli

pytestmark = pytest.mark.whole_run


def test_a_model_is_evaluated_on_another_fetched_dataset(finished_run: Path, tmp_path: Path) -> None:
    import csv

    from tests.helpers import shape_image

    run_dir = finished_run
    # Another "hospital": the same shapes under other class names, one class the model never saw.
    for number, (label, name) in enumerate(((0, "square"), (1, "bar"), (2, "column"), (0, "unknown_thing"))):
        folder = tmp_path / "elsewhere" / name
        folder.mkdir(parents=True)
        for index in range(8):
            shape_image(label, seed=5000 + 100 * number + index, size=40).save(folder / f"{name}_{index}.png")
    assert cli("fetch", "folder", "--from", str(tmp_path / "elsewhere")).returncode == 0

    result = cli(
        "evaluate",
        str(run_dir),
        "--dataset",
        "elsewhere",
        "--map",
        "square=class_0,bar=class_1,column=class_2",
    )

    assert result.returncode == 0, result.stderr
    said = " ".join(result.stderr.split())
    out = run_dir / "external" / "elsewhere"
    stored = json.loads((out / "evaluation.json").read_text())
    assert stored["n_test"] == 24 and stored["external"]["left_out"] == {"unknown_thing": 8}
    assert "Left out, as classes the model does not know: unknown_thing (8)." in said
    low, high = stored["intervals"]["accuracy"]
    assert f"accuracy {stored['accuracy']:.4f} (95% CI {low:.3f}–{high:.3f})" in said
    with open(out / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    # The stored accuracy is the share of rows whose prediction is their (mapped) label.
    assert stored["accuracy"] == pytest.approx(sum(r["label"] == r["predicted"] for r in rows) / len(rows))
    assert {r["label"] for r in rows} == {"class_0", "class_1", "class_2"}
    assert (out / "report.pdf").is_file() and "External validation" in (out / "report.md").read_text()

    unknown = cli("evaluate", str(run_dir), "--dataset", "elsewhere", "--map", "square=circle")
    assert unknown.returncode == 2 and "--map names circle, which the model does not know" in " ".join(
        unknown.stderr.split()
    )


def test_external_figures_average_over_the_classes_present_beside_the_runs_own(
    finished_run: Path, tmp_path: Path
) -> None:
    # With 2 of the classes present, macro recall used to count the absent one as 0 (0.200 where
    # balanced accuracy said 0.500), under the heading "Metrics on the test split".
    import csv

    from sklearn import metrics

    from tests.helpers import cli_here, shape_image

    for label in (0, 1):
        folder = tmp_path / "partial" / f"class_{label}"
        folder.mkdir(parents=True)
        for index in range(6):
            shape_image(label, seed=7000 + 10 * label + index, size=40).save(folder / f"{index}.png")
    assert cli_here("fetch", "folder", "--from", str(tmp_path / "partial")).returncode == 0
    result = cli_here("evaluate", str(finished_run), "--dataset", "partial")
    assert result.returncode == 0, result.stderr
    said = " ".join(result.stderr.split())  # the terminal says what the report says of small classes
    assert "note: Per-class figures are not meaningful for classes with fewer than 10 test images" in said

    out = finished_run / "external" / "partial"
    stored = json.loads((out / "evaluation.json").read_text())
    with open(out / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    truth, predicted = [r["label"] for r in rows], [r["predicted"] for r in rows]
    present = ["class_0", "class_1"]
    assert stored["absent_classes"] == ["class_2"]
    assert stored["macro"]["recall"] == pytest.approx(
        metrics.recall_score(truth, predicted, labels=present, average="macro", zero_division=0)
    )
    assert stored["macro"]["f1-score"] == pytest.approx(
        metrics.f1_score(truth, predicted, labels=present, average="macro", zero_division=0)
    )
    assert stored["macro"]["recall"] == pytest.approx(stored["balanced_accuracy"])
    report = (out / "report.md").read_text()
    assert (
        "## Metrics on the external dataset partial" in report and "Metrics on the test split" not in report
    )
    assert (
        "No test image is of class_2: macro figures and balanced accuracy average over the 2 classes"
        in report
    )
    internal = json.loads((finished_run / "evaluation.json").read_text())
    low, high = internal["intervals"]["accuracy"]
    assert (
        f"| accuracy | {internal['accuracy']:.3f} ({low:.3f} – {high:.3f}) | {stored['accuracy']:.3f} ("
        in report
    )

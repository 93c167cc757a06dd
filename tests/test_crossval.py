"""Grouped cross-validation (pipeline/crossval.py): every image tested once per repeat, groups
whole, a killed CV resumed, classes too small for the folds."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from breedscope.runs.rundir import RunDir
from tests.helpers import (
    TINY,
    as_in_a_terminal,
    cli,
    run_dir_of,
    write_tree,
)

pytestmark = pytest.mark.whole_run


def test_cross_validation_tests_every_image_once_per_repeat_and_keeps_groups_whole(
    tree_dataset: str, tmp_path: Path
) -> None:
    import csv
    from collections import defaultdict

    runs = tmp_path / "runs"
    args = ["run", "--dataset", tree_dataset, *TINY, "--epochs", "2", "--cv", "3", "--repeats", "2"]
    result = cli(*args, "--runs-dir", str(runs))
    assert result.returncode == 0, result.stderr
    run_dir = run_dir_of(runs)
    images = RunDir(run_dir).manifest().rows
    with open(run_dir / "folds.csv", newline="") as handle:
        folds = list(csv.DictReader(handle))
    assert [row["path"] for row in folds] == [row.path for row in images]
    for repeat in ("repeat_1", "repeat_2"):
        fold_of_group = defaultdict(set)
        for row in folds:
            fold_of_group[row["group"]].add(row[repeat])
        assert all(len(f) == 1 for f in fold_of_group.values())  # a group never straddles folds
        for label in {row["label"] for row in folds}:  # stratified: every fold tests every class
            assert {row[repeat] for row in folds if row["label"] == label} == {"1", "2", "3"}

    with open(run_dir / "predictions.csv", newline="") as handle:
        predictions = list(csv.DictReader(handle))
    assert len(predictions) == 2 * len(images)
    for half in (predictions[: len(images)], predictions[len(images) :]):
        assert sorted(p["path"] for p in half) == sorted(row.path for row in images)  # each once
    stored = json.loads((run_dir / "evaluation.json").read_text())
    assert stored["n_test"] == 2 * len(images) and len(stored["cv"]["per_fold"]) == 6
    assert stored["accuracy"] == pytest.approx(
        sum(p["label"] == p["predicted"] for p in predictions) / len(predictions)
    )
    assert [sum(f["n_test"] for f in stored["cv"]["per_fold"] if f["repeat"] == r) for r in (1, 2)] == [
        len(images)
    ] * 2
    report = (run_dir / "report.md").read_text()
    assert "## Cross-validation" in report and "Grouped, stratified 3-fold cross-validation" in report
    assert f"| total | {len(images)} |" in report  # the summary counts every image of the pool
    assert not (run_dir / "model.keras").exists()
    refused = cli("predict", str(run_dir), str(tmp_path))
    assert refused.returncode == 2 and "is a cross-validation run" in " ".join(refused.stderr.split())


def test_a_killed_cross_validation_resumes_to_the_uninterrupted_result(
    tree_dataset: str, tmp_path: Path
) -> None:
    args = ["run", "--dataset", tree_dataset, *TINY, "--epochs", "2", "--cv", "3", "--repeats", "2"]
    assert cli(*args, "--runs-dir", str(tmp_path / "whole")).returncode == 0
    whole = run_dir_of(tmp_path / "whole")

    runs = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, "-m", "breedscope.cli", *args, "--runs-dir", str(runs)],
        preexec_fn=as_in_a_terminal,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if len(list(runs.glob("shapes/*/folds/*/evaluation.json"))) >= 2:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed = run_dir_of(runs)
    assert json.loads((killed / "status.json").read_text())["state"] == "running", "finished before the kill"

    resumed = cli("run", "--resume", str(killed))
    assert resumed.returncode == 0, resumed.stderr
    for name in ("predictions.csv", "evaluation.json", "folds.csv"):
        assert (killed / name).read_text() == (whole / name).read_text(), name


def test_cross_validation_leaves_out_a_class_smaller_than_its_folds_with_a_sentence(
    make_tree, tmp_path: Path
) -> None:
    # `run --cv 5` with a 3-image class used to fail after making its run directory.
    from tests.helpers import cli_here

    tree = make_tree(classes=2, per_class=10, size=40)
    tiny = write_tree(tmp_path / "tiny", classes=3, per_class=3, size=40) / "class_2"
    shutil.copytree(tiny, tree / "class_2")
    assert cli_here("fetch", "folder", "--from", str(tree), "--name", "uneven").returncode == 0
    runs = tmp_path / "runs"
    result = cli_here(
        "run", "--dataset", "uneven", *TINY, "--epochs", "1", "--cv", "5", "--runs-dir", str(runs)
    )
    assert result.returncode == 0, result.stderr
    said = " ".join(result.stderr.split())
    assert "class 'class_2' has 3 group(s) of images, too few to test in each of 5 folds; left out" in said
    assert "(--cv 3 would keep it)" in said and "Cross-validation: 5 grouped, stratified folds" in said
    evaluation = json.loads((runs / "uneven" / "run" / "evaluation.json").read_text())
    assert evaluation["classes"] == ["class_0", "class_1"] and evaluation["n_test"] == 20
    assert sorted(p.name for p in (runs / "uneven").iterdir()) == ["run"]  # no failed run beside it

    too_few = cli_here("run", "--dataset", "uneven", *TINY, "--cv", "11", "--runs-dir", str(runs))
    assert too_few.returncode == 2
    assert "--cv 11 leaves fewer than two classes" in " ".join(too_few.stderr.split())
    assert sorted(p.name for p in (runs / "uneven").iterdir()) == ["run"]

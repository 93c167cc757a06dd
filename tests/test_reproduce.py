"""``breedscope reproduce``: a study's protocol, the sound one and cross-validation on one page,
with the paired effect of each protocol difference; interrupted and resumed."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from breedscope.evaluation.metrics import bootstrap_interval
from breedscope.pipeline.reproduction import paired_effect
from breedscope.report.reproduction import points
from breedscope.runs.rundir import RunDir
from tests.helpers import as_in_a_terminal, cli

pytestmark = pytest.mark.whole_run

# The tiny model of the other run tests, as the --config every run of a reproduction takes.
TINY_CONFIG = """\
model: {weights: none, alpha: 0.35, image_size: 32}
augment: {preset: light, views: 2}
split: {train: 0.6, val: 0.2, test: 0.2}
train: {batch_size: 8, epochs: 2}
"""
MEMBERS = ["faithful", "sound", "cv", "cv-faithful"]


@pytest.fixture
def copies_dataset(make_tree, tmp_path: Path) -> str:
    """Three classes of 14 images, four of each copied once: groups a per-image split breaks up
    (as the chest X-rays' patients, or BCCD's augmented copies)."""
    root = make_tree(classes=3, per_class=14, size=40)
    for folder in root.iterdir():
        for index in range(4):
            shutil.copy(folder / f"img_{index:03d}.png", folder / f"copy_{index:03d}.png")
    assert cli("fetch", "folder", "--from", str(root), "--name", "shapes").returncode == 0
    return "shapes"


def reproduce_args(tmp_path: Path, *more: str) -> list[str]:
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_CONFIG)
    return ["reproduce", "chest_xray", "--dataset", "shapes", "--config", str(config), "--cv", "3", *more]


def fold_groups(run_dir: Path) -> dict[str, set[str]]:
    """The folds each sound group (the sound run's manifest) was tested in."""
    with open(run_dir / "folds.csv", newline="") as handle:
        fold_of = {row["path"]: row["repeat_1"] for row in csv.DictReader(handle)}
    folds = defaultdict(set)
    for row in RunDir(run_dir.parent / "cv").manifest().rows:
        folds[row.group].add(fold_of[row.path])
    return folds


def correct(run_dir: Path) -> dict[str, bool]:
    with open(run_dir / "predictions.csv", newline="") as handle:
        return {row["path"]: row["label"] == row["predicted"] for row in csv.DictReader(handle)}


def expected_effect(sound_dir: Path, changed_dir: Path) -> dict:
    """The paired effect, recomputed here: mean correctness with minus without, over the same
    images, with a bootstrap interval resampling the sound run's groups."""
    sound, changed = correct(sound_dir), correct(changed_dir)
    assert sorted(sound) == sorted(changed) and len(sound) == 54
    paths = sorted(sound)
    a = np.array([sound[p] for p in paths], dtype=float)
    b = np.array([changed[p] for p in paths], dtype=float)
    group_of = {row.path: row.group for row in RunDir(sound_dir).manifest().rows}
    groups = [group_of[p] for p in paths]
    low, high = bootstrap_interval(a, b, lambda x, y: y.mean() - x.mean(), groups, seed=42)
    return {
        "sound_accuracy": pytest.approx(a.mean()),
        "changed_accuracy": pytest.approx(b.mean()),
        "effect": pytest.approx(b.mean() - a.mean()),
        "interval": pytest.approx([low, high]),
        "images": 54,
        "groups": len(set(groups)),
    }


def test_reproduce_runs_each_protocol_and_measures_the_difference_on_the_same_images(
    copies_dataset: str, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    result = cli(*reproduce_args(tmp_path, "--runs-dir", str(runs)), env={"COLUMNS": "100"})
    assert result.returncode == 0, result.stderr
    home = runs / "shapes" / "reproduce-chest_xray"
    for key in MEMBERS:
        assert RunDir(home / key).status()["state"] == "succeeded", key
    assert RunDir(home / "faithful").config().faithful and not RunDir(home / "sound").config().faithful
    assert RunDir(home / "sound").config().split.grouped  # the sound run keeps groups whole

    # The sound CV keeps each group in one fold; the study's per-image CV splits some copies up.
    assert all(len(folds) == 1 for folds in fold_groups(home / "cv").values())
    assert any(len(folds) > 1 for folds in fold_groups(home / "cv-faithful").values())

    # The effect is the paired difference over the same 54 images, computed here from the two
    # runs' predictions, with an interval that resamples the sound groups.
    results = json.loads((home / "results.json").read_text())
    (effect,) = results["effects"]
    assert effect["difference"] == "split.grouped = False"
    assert effect == expected_effect(home / "cv", home / "cv-faithful") | {"difference": effect["difference"]}
    # The tiny model guesses, so both runs may score alike; predictions that differ must show.
    with open(home / "cv-faithful" / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows[:20]:
        row["predicted"] = row["label"]
    with open(home / "cv-faithful" / "predictions.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, rows[0].keys())
        writer.writeheader()
        writer.writerows(rows)
    changed = paired_effect(home / "cv", home / "cv-faithful", "x", seed=42)
    assert changed.effect > 0 and asdict(changed) == expected_effect(home / "cv", home / "cv-faithful") | {
        "difference": "x"
    }

    # One page: each run's figure, the paper's, and the effect; the terminal says the same.
    page = (home / "report.md").read_text()
    assert "| paper | as reported |  | 0.954 | n/a |" in page
    for key in MEMBERS:
        assert f"| {key}/ |" in page
    assert "## What each difference in protocol is worth" in page and "| split.grouped = False |" in page
    assert (home / "figures" / "intervals.png").is_file() and (home / "report.pdf").stat().st_size > 10_000
    said = " ".join(result.stdout.split() + result.stderr.split())
    assert f"Effect of split.grouped = False: {points(effect['effect'])} points of accuracy" in said
    assert f"Report:{home / 'report.pdf'}" in "".join(said.split())  # a long path wraps

    # From Python, the same directory: its runs by role, the effects, a table in a notebook.
    from breedscope import Reproduction

    reproduction = Reproduction(home)
    assert list(reproduction.runs) == MEMBERS and reproduction.runs["cv"].metrics.n_test == 54
    assert reproduction.effects[0]["difference"] == "split.grouped = False"
    assert "| cv-faithful/ |" in reproduction._repr_markdown_()


def test_an_interrupted_reproduction_keeps_its_finished_runs_and_resumes(
    copies_dataset: str, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    process = subprocess.Popen(
        [sys.executable, "-m", "breedscope.cli", *reproduce_args(tmp_path, "--runs-dir", str(runs))],
        preexec_fn=as_in_a_terminal,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "400"},  # no path folded over two lines
    )
    home = runs / "shapes" / "reproduce-chest_xray"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if RunDir(home / "faithful").status().get("state") == "succeeded":
            break
        time.sleep(0.05)
    # SIGTERM, as a scheduler ends it (Ctrl-C takes the same path: breedscope.core.signals); a
    # reproduction killed so used to stay "running" for ever.
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    assert f"Continue with: breedscope reproduce --resume {home}" in " ".join(stderr.split())
    assert RunDir(home).status()["state"] == "interrupted"
    finished = (home / "faithful" / "evaluation.json").stat().st_mtime_ns

    resumed = cli("reproduce", "--resume", str(home))
    assert resumed.returncode == 0, resumed.stderr
    assert (home / "faithful" / "evaluation.json").stat().st_mtime_ns == finished  # kept, not redone
    assert RunDir(home).status()["state"] == "succeeded"
    assert [r["key"] for r in json.loads((home / "results.json").read_text())["runs"]] == MEMBERS


def test_reproduce_all_does_every_fetched_study_and_writes_one_table(tmp_path: Path) -> None:
    from tests.helpers import shape_image

    for label, name in enumerate(["NORMAL", "PNEUMONIA"]):  # a tiny archive in the Kaggle layout
        folder = tmp_path / "chest" / "chest_xray" / "train" / name
        folder.mkdir(parents=True)
        for index in range(12):
            image = shape_image(label, seed=label * 1000 + index, size=40).convert("RGB")
            image.save(folder / f"person{index}_virus_{index}.jpeg")
    assert cli("fetch", "chest_xray", "--from", str(tmp_path / "chest")).returncode == 0
    runs = tmp_path / "runs"
    args = reproduce_args(tmp_path, "--runs-dir", str(runs))
    result = cli(*[a for a in args if a not in ("chest_xray", "--dataset", "shapes")], "--all")
    assert result.returncode == 0, result.stderr
    said = " ".join(result.stdout.split() + result.stderr.split())
    assert "Skipped cats: 'cat_breeds' is not fetched (run `breedscope fetch cat_breeds`)." in said
    home = runs / "chest_xray" / "reproduce-chest_xray"
    assert json.loads((home / "reproduction.json").read_text())["folds"] == 3  # --cv reached it
    table = (runs / "reproductions.md").read_text()
    (row,) = [line for line in table.splitlines() if line.startswith("| chest_xray |")]
    results = json.loads((home / "results.json").read_text())
    cv = next(r for r in results["runs"] if r["key"] == "cv")
    assert f"| {cv['accuracy']:.3f} (" in row and "split.grouped = False:" in row


def test_reproduce_refuses_what_it_cannot_do_in_one_sentence(tmp_path: Path) -> None:
    no_study = cli("reproduce", "demo")
    assert no_study.returncode == 2 and "'demo' is a preset without a study to reproduce" in no_study.stderr
    nothing = cli("reproduce", "--all", "--runs-dir", str(tmp_path))
    said = " ".join(nothing.stdout.split() + nothing.stderr.split())
    assert nothing.returncode == 2 and "No study's dataset is fetched" in said
    assert "Skipped chest_xray: 'chest_xray' is not fetched (run `breedscope fetch chest_xray`)." in said
    not_a_reproduction = cli("reproduce", "--resume", str(tmp_path))
    assert not_a_reproduction.returncode == 2 and "has no reproduction.json" in not_a_reproduction.stderr


def test_cross_validation_with_fine_tuning_is_warned_about(tmp_path: Path) -> None:
    from breedscope import configure
    from breedscope.pipeline.crossval import cost_note

    tuned = configure("demo", preset="generic", faithful=True, cv=5, repeats=2)
    assert "fine-tunes the backbone 10 times" in cost_note(tuned)
    assert cost_note(configure("demo", preset="generic", cv=5)) is None  # features are reused
    assert cost_note(configure("demo", preset="generic", faithful=True)) is None  # one split


def test_resuming_a_reproduction_refuses_settings_it_would_ignore(tmp_path: Path) -> None:
    # `reproduce --resume DIR --cv 3` used to ignore --cv 3 without a word.
    from tests.helpers import cli_here

    result = cli_here("reproduce", "--resume", str(tmp_path), "--cv", "3", "--seed", "4")
    assert result.returncode == 2
    text = " ".join(result.stderr.split())
    assert "--resume finishes a reproduction as it was planned, so --cv, --seed cannot change it" in text

"""The label audit (evaluation/label_audit.py, pipeline/audit.py) and ``--exclude``
(data/exclusion.py): planted label errors found, out-of-fold predictions that never saw the
image, the files and page it writes, and a run that leaves out exactly the images listed."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from breedscope.evaluation import label_audit
from tests.helpers import TINY, cli

pytest.importorskip("cleanlab", reason="the audit's extra (breedscope[audit]) is not installed")


def _blobs(per_class: int = 40, classes: int = 3, dim: int = 64, seed: int = 0):
    """Features in clusters (embedding-like: 64 dimensions, each class's centre two noise widths
    from the others'), their labels, and 5 folds dealt in turn."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 12 / np.sqrt(dim), (classes, dim))
    labels = np.repeat(np.arange(classes), per_class)
    features = centres[labels] + rng.normal(0, 1, (len(labels), dim))
    return features.astype(np.float32), labels, np.arange(len(labels)) % 5


def test_planted_label_errors_are_found_and_their_true_class_suggested() -> None:
    features, truth, folds = _blobs()
    given = truth.copy()
    planted = {3, 50, 97, 110, 7, 61}
    index = np.array(sorted(planted))
    given[index] = (truth[index] + 1) % 3
    names = ["a", "b", "c"]

    found = label_audit.find_issues(features, given, folds, names, seed=0)

    # The ranking puts the six planted labels first; the flags (cleanlab's, conservative) hold
    # at least five of them and no other label, each with its true class suggested.
    assert set(found.ranking()[:6]) == planted
    labelled = {issue.index: issue for issue in found.issues if issue.kind == "label"}
    assert len(set(labelled) & planted) >= 5 and set(labelled) <= planted
    assert all(
        labelled[i].suggested == names[truth[i]] and labelled[i].given == names[given[i]] for i in labelled
    )
    scores = [issue.score for issue in found.issues]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)


def test_an_image_is_never_predicted_by_a_probe_that_trained_on_it() -> None:
    features, labels, folds = _blobs()
    before = label_audit.out_of_fold_probabilities(features, labels, folds, 3, seed=0)
    # Every label of fold 0 changed: fold 0's own predictions cannot move, every other fold's do.
    changed = labels.copy()
    changed[folds == 0] = (labels[folds == 0] + 1) % 3
    after = label_audit.out_of_fold_probabilities(features, changed, folds, 3, seed=0)
    np.testing.assert_array_equal(before[folds == 0], after[folds == 0])
    assert np.abs(before[folds != 0] - after[folds != 0]).max() > 0.01
    np.testing.assert_allclose(before.sum(axis=1), 1.0, rtol=1e-6)


def test_the_audit_command_finds_images_filed_under_the_wrong_class(
    make_tree, keras_home: Path, tmp_path: Path
) -> None:
    root = make_tree(classes=3, per_class=20, size=64)
    moved = ["class_0/img_003.png", "class_2/img_011.png"]
    targets = ["class_1", "class_0"]
    planted = []
    for path, target in zip(moved, targets, strict=True):
        shutil.move(root / path, root / target / ("moved_" + Path(path).name))
        planted.append(f"{target}/moved_{Path(path).name}")
    assert cli("fetch", "folder", "--from", str(root), "--name", "shapes").returncode == 0

    result = cli("audit", "shapes", "--cv", "4", "--runs-dir", str(tmp_path / "runs"))

    assert result.returncode == 0, result.stderr
    folder = tmp_path / "runs" / "shapes" / "audit"
    with open(folder / "issues.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["path", "given", "suggested", "score", "kind"]
    flagged = {row["path"]: row for row in rows}
    assert set(planted) <= set(flagged)
    assert {flagged[p]["suggested"] for p in planted} == {"class_0", "class_2"}
    with open(folder / "ranking.csv", newline="") as handle:
        ranking = [row["path"] for row in csv.DictReader(handle)]
    assert len(ranking) == 60 and set(ranking[:2]) == set(planted)
    summary = json.loads((folder / "audit.json").read_text())
    assert summary["images"] == 60 and summary["suspects"] == len(rows) and summary["folds"] == 4
    page = (folder / "audit.md").read_text()
    assert f"**{len(rows)}** of 60 images" in page and "figures/issues.png" in page
    assert (folder / "audit.pdf").read_bytes().startswith(b"%PDF") and (
        folder / "figures" / "issues.png"
    ).is_file()
    assert str(folder / "issues.csv") in " ".join((result.stdout + result.stderr).split())


def _exclusion_file(path: Path, paths: list[str], column: str = "path") -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([column, "kind"])
        writer.writerows([[p, "label"] for p in paths])
    return path


def test_exclude_trains_without_exactly_the_listed_images(tree_dataset: str, tmp_path: Path) -> None:
    left_out = ["class_0/img_000.png", "class_1/img_005.png", "class_2/img_013.png"]
    exclude = _exclusion_file(tmp_path / "issues.csv", left_out)
    runs = tmp_path / "runs"
    common = ("run", "--dataset", tree_dataset, *TINY, "--epochs", "1", "--runs-dir", str(runs))
    assert cli(*common, "--name", "all").returncode == 0
    result = cli(*common, "--name", "clean", "--exclude", str(exclude))
    assert result.returncode == 0, result.stderr

    def manifest_paths(run: str) -> set[str]:
        with open(runs / tree_dataset / run / "manifest.csv", newline="") as handle:
            return {row["path"] for row in csv.DictReader(handle)}

    assert manifest_paths("all") - manifest_paths("clean") == set(left_out)
    assert manifest_paths("clean") <= manifest_paths("all")
    header = json.loads((runs / tree_dataset / "clean" / "manifest.json").read_text())
    assert header["excluded"]["images"] == 3 and header["excluded"]["file"] == str(exclude)
    assert "Excluded: 3 image(s) listed in" in (runs / tree_dataset / "clean" / "report.md").read_text()
    compared = cli("compare", str(runs / tree_dataset / "all"), str(runs / tree_dataset / "clean"))
    assert compared.returncode == 0 and "3 excluded" in compared.stdout


@pytest.mark.parametrize(
    "problem,expected",
    [
        ("unknown", "names 1 path(s) that are not images of dataset 'shapes'"),
        ("missing", "does not exist"),
        ("no_path_column", "has no 'path' column"),
        ("with_manifest", "use one of them"),
    ],
)
def test_a_bad_exclude_file_is_one_sentence_and_no_run(
    problem: str, expected: str, finished_run: Path, tmp_path: Path
) -> None:
    tree_dataset = "shapes"  # finished_run's dataset, fetched
    exclude = tmp_path / "issues.csv"
    if problem == "unknown":
        _exclusion_file(exclude, ["class_0/img_000.png", "class_9/nowhere.png"])
    elif problem == "no_path_column":
        _exclusion_file(exclude, ["class_0/img_000.png"], column="file")
    elif problem == "with_manifest":
        _exclusion_file(exclude, ["class_0/img_000.png"])
    extra = ["--manifest", str(finished_run)] if problem == "with_manifest" else []
    runs = tmp_path / "new-runs"
    result = cli(
        "run", "--dataset", tree_dataset, *TINY, "--exclude", str(exclude), *extra, "--runs-dir", str(runs)
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and expected in " ".join(result.stderr.split())
    assert not (runs / tree_dataset).exists()


def test_an_audit_with_more_folds_than_a_class_has_images_is_one_sentence(
    tree_dataset: str, tmp_path: Path
) -> None:
    result = cli("audit", tree_dataset, "--cv", "21", "--runs-dir", str(tmp_path / "runs"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "cv.folds" in " ".join(result.stderr.split())


def test_without_cleanlab_the_audit_is_one_sentence_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    import breedscope as bs
    from breedscope.core.errors import ConfigError

    monkeypatch.setitem(sys.modules, "cleanlab", None)  # what `import cleanlab` finds uninstalled
    with pytest.raises(ConfigError, match=r'pip install "breedscope\[audit\]"'):
        bs.audit("shapes")


def test_the_audit_forks_no_worker_process(monkeypatch: pytest.MonkeyPatch) -> None:
    # In a notebook kernel (threads of its own, and TensorFlow's), a forked pool worker can
    # deadlock on a lock another thread held at the fork; cleanlab's default pool did that.
    import multiprocessing.pool

    def no_pool(*args, **kwargs):
        raise AssertionError("the audit started a process pool")

    monkeypatch.setattr(multiprocessing.pool, "Pool", no_pool)
    monkeypatch.setattr(multiprocessing, "Pool", no_pool)
    features, labels, folds = _blobs()
    assert label_audit.find_issues(features, labels, folds, ["a", "b", "c"], seed=0).issues is not None

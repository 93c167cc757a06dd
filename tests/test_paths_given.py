"""Paths a user gives where breedscope writes: a file where a folder belongs, a folder where a
file belongs, a file in the middle of a path. Each is one sentence and exit 2, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import cli_here, shape_image, write_tree


def one_sentence(result) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "Unexpected error" not in result.stderr, result.stderr
    assert result.stderr.lstrip().startswith("Error: "), result.stderr
    return " ".join(result.stderr.split())


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_text("keep me\n")
    return path


def test_split_into_a_file_says_so(finished_run: Path, a_file: Path) -> None:
    text = one_sentence(cli_here("split", "shapes", "--output", str(a_file)))
    assert str(a_file) in text
    assert a_file.read_text() == "keep me\n"


def test_predict_into_a_folder_says_so(finished_run: Path, tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    image = tmp_path / "image.png"
    shape_image(0, seed=1, size=40).save(image)
    text = one_sentence(cli_here("predict", str(finished_run), str(image), "--csv", str(folder)))
    assert str(folder) in text and "folder" in text


def test_compare_into_a_folder_says_so(finished_run: Path, tmp_path: Path) -> None:
    folder = tmp_path / "table"
    folder.mkdir()
    text = one_sentence(cli_here("compare", str(finished_run), str(finished_run), "--output", str(folder)))
    assert str(folder) in text


def test_augment_preview_with_a_runs_dir_that_is_a_file_says_so(finished_run: Path, a_file: Path) -> None:
    text = one_sentence(cli_here("augment", "preview", "--dataset", "shapes", "--runs-dir", str(a_file)))
    assert str(a_file) in text
    assert a_file.read_text() == "keep me\n"


def test_export_below_a_file_says_so(finished_run: Path, a_file: Path) -> None:
    text = one_sentence(cli_here("export", str(finished_run), "--output", str(a_file / "sub")))
    assert "is a file" in text
    assert a_file.read_text() == "keep me\n"


def test_export_into_the_run_directory_itself_is_refused(finished_run: Path) -> None:
    before = sorted(p.name for p in finished_run.iterdir())
    text = one_sentence(
        cli_here("export", str(finished_run), "--format", "keras", "--output", str(finished_run))
    )
    assert "is the run directory itself" in text
    assert sorted(p.name for p in finished_run.iterdir()) == before


def test_a_breedscope_home_that_is_a_file_says_so(a_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BREEDSCOPE_HOME", str(a_file))
    text = one_sentence(cli_here("datasets"))
    assert "BREEDSCOPE_HOME" in text and str(a_file) in text


# --- nothing a user keeps lies where `fetch --force` replaces a dataset ------------------------


def test_a_default_split_survives_fetching_its_dataset_again(
    finished_run: Path, home: Path, tmp_path: Path
) -> None:
    # It used to be written into datasets/shapes/manifests/, which `fetch --force` deleted.
    result = cli_here("split", "shapes")
    assert result.returncode == 0, result.stderr
    [written] = list((home / "manifests" / "shapes").glob("*/manifest.csv"))
    before = written.read_bytes()
    source = write_tree(tmp_path / "again", classes=3, per_class=14, size=40)
    fetched = cli_here("fetch", "folder", "--from", str(source), "--name", "shapes", "--force")
    assert fetched.returncode == 0, fetched.stderr
    assert written.read_bytes() == before
    assert not (home / "datasets" / "shapes" / "manifests").exists()


@pytest.mark.parametrize("where", ["datasets", "datasets/shapes/runs"])
def test_outputs_inside_the_dataset_store_are_refused(finished_run: Path, home: Path, where: str) -> None:
    inside = str(home / where)
    text = one_sentence(cli_here("run", "--dataset", "shapes", "--runs-dir", inside))
    assert "lies inside breedscope's dataset store" in text
    text = one_sentence(cli_here("split", "shapes", "--output", inside))
    assert "lies inside breedscope's dataset store" in text
    text = one_sentence(cli_here("export", str(finished_run), "--output", inside))
    assert "lies inside breedscope's dataset store" in text
    assert not (home / "datasets" / "shapes" / "runs").exists()

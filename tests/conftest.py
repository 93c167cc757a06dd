"""Fixtures: an isolated data cache, a Keras cache with the shared weights, trees of images, a
finished run."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import SESSION_KERAS_HOME, TINY, WEIGHTS, cli, made_once, write_tree


@pytest.fixture(scope="session", autouse=True)
def session_keras_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One KERAS_HOME per worker, set before anything imports Keras (which reads it once), with
    the shared ImageNet weights in it where they exist: the CLI then runs in the worker's process
    (tests/helpers.cli) with the Keras cache a user's fresh process would have."""
    path = tmp_path_factory.mktemp("keras_home")
    (path / "models").mkdir()
    if WEIGHTS.is_file():
        shutil.copy(WEIGHTS, path / "models" / WEIGHTS.name)
    os.environ["KERAS_HOME"] = os.environ[SESSION_KERAS_HOME] = str(path)
    return path


@pytest.fixture(autouse=True)
def home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own BREEDSCOPE_HOME, so nothing touches the user's cache."""
    path = tmp_path_factory.mktemp("breedscope_home")
    monkeypatch.setenv("BREEDSCOPE_HOME", str(path))
    return path


@pytest.fixture
def keras_home(session_keras_home: Path) -> Path:
    """The worker's KERAS_HOME, with the shared ImageNet MobileNetV2 weights (skipped without)."""
    if not WEIGHTS.is_file():
        pytest.skip(f"ImageNet weights {WEIGHTS} are absent (they sit in ../shared/weights in CI)")
    return session_keras_home


@pytest.fixture
def make_tree(tmp_path: Path) -> Callable[..., Path]:
    """Write a ``<class>/<image>.png`` tree of learnable images: ``make_tree(classes=2, per_class=20)``."""

    def make(classes: int = 2, per_class: int = 20, size: int = 48, root: Path | None = None) -> Path:
        return write_tree(root or tmp_path / "tree", classes, per_class, size)

    return make


def _train_shapes(folder: Path) -> None:
    env = {"BREEDSCOPE_HOME": str(folder / "home")}
    tree = write_tree(folder / "tree", classes=3, per_class=14, size=40)
    fetched = cli("fetch", "folder", "--from", str(tree), "--name", "shapes", env=env)
    assert fetched.returncode == 0, fetched.stderr
    trained = cli(
        "run", "--dataset", "shapes", *TINY, "--epochs", "2", "--runs-dir", str(folder / "runs"), env=env
    )
    assert trained.returncode == 0, trained.stderr


@pytest.fixture
def finished_run(tmp_path_factory: pytest.TempPathFactory, home: Path, tmp_path: Path) -> Path:
    """A finished tiny run of the fetched dataset ``shapes`` (3 classes, 14 images each, 40 px;
    ``TINY``, 2 epochs), for tests of what is done with a run: trained once per session, copied
    into each test's ``tmp_path``, its dataset into the test's own ``BREEDSCOPE_HOME``."""
    shared = made_once(tmp_path_factory, "finished-shapes-run", _train_shapes)
    shutil.copytree(shared / "home" / "datasets", home / "datasets")
    run_dir = tmp_path / "runs" / "shapes" / "run"
    shutil.copytree(shared / "runs" / "shapes" / "run", run_dir)
    return run_dir


@pytest.fixture
def tree_dataset(make_tree, tmp_path: Path) -> str:
    """The fetched dataset ``shapes``: 3 classes of 14 learnable 40-px images."""
    root = make_tree(classes=3, per_class=14, size=40)
    result = cli("fetch", "folder", "--from", str(root), "--name", "shapes")
    assert result.returncode == 0, result.stderr
    return "shapes"

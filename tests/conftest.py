"""Fixtures: an isolated data cache, a Keras cache with the shared weights, trees of images."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import make_keras_home, shape_image


@pytest.fixture(autouse=True)
def home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own BREEDSCOPE_HOME, so nothing touches the user's cache."""
    path = tmp_path_factory.mktemp("breedscope_home")
    monkeypatch.setenv("BREEDSCOPE_HOME", str(path))
    return path


@pytest.fixture
def keras_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = make_keras_home(tmp_path_factory)
    monkeypatch.setenv("KERAS_HOME", str(path))
    return path


@pytest.fixture
def make_tree(tmp_path: Path) -> Callable[..., Path]:
    """Write a ``<class>/<image>.png`` tree of learnable images: ``make_tree(classes=2, per_class=20)``."""

    def make(classes: int = 2, per_class: int = 20, size: int = 48, root: Path | None = None) -> Path:
        root = root or tmp_path / "tree"
        for label in range(classes):
            folder = root / f"class_{label}"
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(per_class):
                shape_image(label, seed=label * 1000 + index, size=size).save(folder / f"img_{index:03d}.png")
        return root

    return make

"""Augmentation: reproducible per image and view, and with domain sense (no mirrored chests)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from breedscope.features.augment import Augmenter
from breedscope.plugins import registry
from tests.helpers import cli, cli_here


def augmenter(name: str, seed: int = 1) -> Augmenter:
    return Augmenter(registry().pick("augmentations", name), seed)


def left_bright_image() -> np.ndarray:
    image = np.full((64, 64, 3), 30, dtype=np.uint8)
    image[:, 8:28] = 220  # a bright band on the left, like a heart shadow that must stay on its side
    return image


def test_same_image_and_view_give_the_same_pixels() -> None:
    image = left_bright_image()
    first, again = augmenter("studies"), augmenter("studies")
    assert np.array_equal(first(image, "abc", 0), again(image, "abc", 0))
    assert not np.array_equal(first(image, "abc", 0), first(image, "abc", 1))
    assert not np.array_equal(first(image, "abc", 0), augmenter("studies", seed=2)(image, "abc", 0))


def test_xray_preset_never_mirrors_but_studies_preset_does() -> None:
    image = left_bright_image()

    def mirrored(name: str) -> int:
        aug = augmenter(name)
        outputs = [aug(image, f"img{i}", v) for i in range(10) for v in range(3)]
        return sum(o[:, :32].mean() < o[:, 32:].mean() for o in outputs)

    assert mirrored("xray") == 0
    assert mirrored("studies") > 5


def test_none_preset_returns_the_image_unchanged() -> None:
    image = left_bright_image()
    assert augmenter("none")(image, "x", 3) is image


def test_preview_writes_a_grid(make_tree, tmp_path: Path) -> None:
    root = make_tree(classes=2, per_class=5, size=40)
    assert cli("fetch", "folder", "--from", str(root), "--name", "shapes").returncode == 0
    out = tmp_path / "grid.png"
    result = cli(
        "augment",
        "preview",
        "--dataset",
        "shapes",
        "--preset",
        "cells",
        "--count",
        "2",
        "--views",
        "3",
        "--image-size",
        "64",
        "--output",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    with Image.open(out) as grid:
        assert grid.width > grid.height  # two rows of four tiles


def test_preview_goes_where_outputs_go_and_says_where(make_tree, tmp_path: Path) -> None:
    root = make_tree(classes=2, per_class=5, size=40)
    assert cli("fetch", "folder", "--from", str(root), "--name", "shapes").returncode == 0
    runs = tmp_path / "runs"
    result = cli(
        "augment",
        "preview",
        "--dataset",
        "shapes",
        "--preset",
        "cells",
        "--count",
        "2",
        "--image-size",
        "64",
        "--runs-dir",
        str(runs),
    )
    assert result.returncode == 0, result.stderr
    expected = runs / "shapes" / "augment_preview-cells.png"
    assert expected.is_file()
    assert str(expected) in "".join(result.stderr.split())  # the path is printed (rich may wrap it)


def test_without_augmentation_albumentations_is_not_loaded() -> None:
    # albumentations and OpenCV take a fifth of a second to import: a run whose preset augments
    # nothing (the PBC study's) must not pay it. A fresh interpreter, with every plugin loaded.
    code = """
import sys
from breedscope.features.augment import Augmenter
from breedscope.plugins import registry
plain = Augmenter(registry().pick("augmentations", "none"), 1)
print(plain.is_identity, "albumentations" in sys.modules)
Augmenter(registry().pick("augmentations", "cells"), 1)
print("albumentations" in sys.modules)
"""
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "False", "True"]


@pytest.mark.parametrize(
    ("option", "value"), [("--count", "0"), ("--views", "-1"), ("--image-size", "0"), ("--seed", "-1")]
)
def test_a_preview_of_impossible_size_is_one_sentence(
    finished_run: Path, option: str, value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    result = cli_here("augment", "preview", "--dataset", "shapes", option, value)
    assert result.returncode == 2, result.stderr
    text = " ".join(result.stderr.split())
    assert text.startswith(f"Error: {option} must be a whole number from"), text
    assert not (Path("runs") / "shapes").exists()

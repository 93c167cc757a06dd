"""The split manifest as Croissant JSON-LD (data/croissant.py), checked by mlcroissant: the
MLCommons reader validates it and loads exactly the manifest's images, classes and splits."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.helpers import cli

mlc = pytest.importorskip("mlcroissant", reason="mlcroissant (the test extra) is not installed")


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _check(folder: Path) -> None:
    dataset = mlc.Dataset(jsonld=folder / "croissant.json")  # validates, or raises
    with open(folder / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns = ("path", "sha256", "label", "group", "split")
    read = {tuple(_text(record[f"images/{c}"]) for c in columns) for record in dataset.records("images")}
    assert read == {tuple(row[c] for c in columns) for row in rows}
    header = json.loads((folder / "manifest.json").read_text())
    assert [_text(r["classes/name"]) for r in dataset.records("classes")] == header["classes"]
    metadata = json.loads((folder / "croissant.json").read_text())
    assert metadata["distribution"][0]["sha256"] == header["csv_sha256"]


def test_a_runs_split_is_croissant_that_mlcroissant_validates_and_reads(finished_run: Path) -> None:
    _check(finished_run)


def test_breedscope_split_writes_croissant_beside_its_manifest(tree_dataset: str, tmp_path: Path) -> None:
    result = cli("split", tree_dataset, "--output", str(tmp_path / "split"))
    assert result.returncode == 0, result.stderr
    _check(tmp_path / "split")

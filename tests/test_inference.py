"""Predicting with a finished run (inference/): files, folders and globs, non-images per file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import cli


@pytest.mark.whole_run
def test_predict_takes_folders_and_globs_and_reports_non_images_per_file(
    finished_run: Path, make_tree, tmp_path: Path
) -> None:
    import csv

    tree = make_tree(classes=2, per_class=3, root=tmp_path / "new")
    (tree / "class_0" / "notes.txt").write_text("not an image")
    (tree / ".DS_Store").write_text("litter")
    os.mkfifo(tree / "pipe.png")  # named on its own: reading it would wait for ever
    out = tmp_path / "out.csv"

    result = cli(
        "predict",
        str(finished_run),
        str(tree / "class_0"),
        str(tree / "class_1" / "*.png"),
        str(tree / "pipe.png"),
        "--csv",
        str(out),
        timeout=120,
    )

    assert result.returncode == 2  # two files could not be read
    with open(out, newline="") as handle:
        rows = {Path(row["path"]).relative_to(tree).as_posix(): row for row in csv.DictReader(handle)}
    assert len(rows) == 8 and rows["class_0/notes.txt"]["error"] == "not an image"
    assert rows["pipe.png"]["error"] == "not a regular file (a pipe, socket or device)"
    assert rows["class_0/notes.txt"]["class_1"] == ""  # every row has every column
    unreadable = ("class_0/notes.txt", "pipe.png")
    assert all(row["class_1"] for name, row in rows.items() if name not in unreadable)
    assert "2 of 8 file(s) could not be read as images" in " ".join(result.stderr.split())

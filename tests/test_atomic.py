"""Atomic writes: a reader never sees half a file, and files get the mode the umask gives."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from breedscope.core.atomic import write_json, write_text


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask,expected", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_written_files_follow_the_umask(umask: int, expected: int, tmp_path: Path) -> None:
    old = os.umask(umask)
    try:
        write_text(tmp_path / "report.md", "# Report\n")
        write_json(tmp_path / "evaluation.json", {"accuracy": 0.9})
    finally:
        os.umask(old)
    assert _mode(tmp_path / "report.md") == expected
    assert _mode(tmp_path / "evaluation.json") == expected


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    from breedscope.core.atomic import atomic_path

    write_text(tmp_path / "a.txt", "old")
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "a.txt") as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert (tmp_path / "a.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


@pytest.mark.skipif(not hasattr(os, "umask") or sys.platform == "win32", reason="POSIX file modes")
def test_a_fetched_dataset_is_readable_by_the_group_under_umask_022(make_tree, home: Path) -> None:
    tree = make_tree(classes=2, per_class=6)
    result = subprocess.run(
        [sys.executable, "-m", "breedscope.cli", "fetch", "folder", "--from", str(tree), "--name", "shared"],
        capture_output=True,
        text=True,
        umask=0o022,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    written = [p for p in (home / "datasets" / "shared").rglob("*") if p.is_file()]
    assert {p.name for p in written} >= {"dataset.json", "images.csv", "validation.json"}
    assert {p.name: oct(_mode(p)) for p in written} == {p.name: oct(0o644) for p in written}

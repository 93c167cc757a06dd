"""Plugins: discovered by entry point, reported with their distribution, isolated when broken."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

from breedscope import plugins
from breedscope.hookspecs import hookimpl
from tests.conftest import REPO, cli


def test_first_party_plugins_come_through_the_entry_point_group() -> None:
    registry = plugins.load()
    names = {p.name: p for p in registry.plugins}
    for expected in (
        "folder",
        "demo",
        "bccd",
        "chest_xray",
        "breast",
        "cat_breeds",
        "mobilenet_v2",
        "markdown",
        "pdf",
        "augmentations",
    ):
        assert names[expected].distribution == "breedscope"
    assert names["bccd"].provides == ("dataset:bccd",)
    assert registry.dataset("mammography").name == "breast"
    assert {"markdown", "pdf"} <= set(registry.reporters)
    assert registry.problems == []


def test_a_plugin_whose_hook_raises_is_reported_and_skipped() -> None:
    broken = types.ModuleType("broken_plugin")

    @hookimpl
    def breedscope_datasets():
        raise RuntimeError("cannot reach my server")

    broken.breedscope_datasets = breedscope_datasets
    registry = plugins.load(extra_modules=[broken])
    assert len(registry.problems) == 1
    assert (
        "failed in breedscope_datasets (RuntimeError: cannot reach my server); skipped"
        in registry.problems[0]
    )
    assert registry.dataset("bccd") is not None  # everything else still works


def test_a_plugin_that_fails_to_import_is_reported_and_the_cli_keeps_working(tmp_path: Path) -> None:
    dist = tmp_path / "broken_dist-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-dist\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[breedscope]\nbroken = module_that_does_not_exist\n")
    out = cli("plugins", env={"PYTHONPATH": str(tmp_path)})
    assert out.returncode == 0
    assert "plugin 'broken' (module_that_does_not_exist) failed to import (ModuleNotFoundError" in " ".join(
        out.stdout.split() + out.stderr.split()
    )
    assert "bccd" in out.stdout


def test_example_third_party_plugin_installs_and_is_found(tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(REPO / "plugins" / "breedscope-html-report"),
        ],
        check=True,
        capture_output=True,
        timeout=240,
    )
    out = cli("plugins", env={"PYTHONPATH": str(target)})
    assert out.returncode == 0, out.stderr
    line = next(line for line in out.stdout.splitlines() if " html " in line)
    assert "breedscope-html-report" in line and "0.1.0" in line and "reporter: html" in line

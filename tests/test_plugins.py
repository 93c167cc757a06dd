"""Plugins: discovered by entry point, reported with their distribution, isolated when broken."""

from __future__ import annotations

import types
from pathlib import Path

from breedscope import plugins
from breedscope.hookspecs import hookimpl
from tests.helpers import REPO, cli_process, pip_install_apart


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
    out = cli_process("plugins", env={"PYTHONPATH": str(tmp_path)})
    assert out.returncode == 0
    assert "plugin 'broken' (module_that_does_not_exist) failed to import (ModuleNotFoundError" in " ".join(
        out.stdout.split() + out.stderr.split()
    )
    assert "bccd" in out.stdout


def test_example_third_party_plugin_installs_and_is_found(tmp_path: Path) -> None:
    target = tmp_path / "site"
    installed = pip_install_apart(target, str(REPO / "plugins" / "breedscope-html-report"))
    assert installed.returncode == 0, installed.stderr
    out = cli_process("plugins", env={"PYTHONPATH": str(target)})
    assert out.returncode == 0, out.stderr
    line = next(line for line in out.stdout.splitlines() if " html " in line)
    assert "breedscope-html-report" in line and "0.1.0" in line and "reporter: html" in line


def test_a_misspelt_hook_is_reported_not_silently_ignored() -> None:
    typo = types.ModuleType("typo_plugin")

    @hookimpl
    def breedscope_dataset():  # the hook is breedscope_datasets
        return []

    typo.breedscope_dataset = breedscope_dataset
    registry = plugins.load(extra_modules=[typo])
    assert registry.problems == [
        "plugin 'typo_plugin' implements 'breedscope_dataset', which is not a breedscope hook "
        "(see breedscope.hookspecs); ignored"
    ]


def test_two_plugins_claiming_one_name_are_reported_and_the_first_is_kept() -> None:
    from breedscope import AugmentPreset

    second = types.ModuleType("second_light")

    @hookimpl
    def breedscope_augmentations():
        return [AugmentPreset(name="light", description="another light", build=list)]

    second.breedscope_augmentations = breedscope_augmentations
    registry = plugins.load(extra_modules=[second])
    assert registry.problems == [
        "plugins 'augmentations' and 'second_light' both provide the augmentation 'light'; "
        "'augmentations' is used (uninstall one, or rename)"
    ]
    assert registry.augmentations["light"].description != "another light"


def test_a_hook_may_ask_for_the_context_and_a_wrong_signature_is_reported(home: Path) -> None:
    from breedscope import DatasetSpec, PluginContext, Scan, __version__

    seen: list[PluginContext] = []
    asks = types.ModuleType("asks_context")

    @hookimpl
    def breedscope_datasets(context):
        seen.append(context)
        return [DatasetSpec(name="ctx", description="d", scan=lambda root: Scan())]

    asks.breedscope_datasets = breedscope_datasets
    wrong = types.ModuleType("wrong_signature")

    @hookimpl
    def breedscope_reporters(settings):  # no hook passes 'settings'
        return []

    wrong.breedscope_reporters = breedscope_reporters
    registry = plugins.load(extra_modules=[asks, wrong])
    assert seen == [PluginContext(home=home, version=__version__)]
    assert "ctx" in registry.datasets
    assert len(registry.problems) == 1 and "plugin 'wrong_signature' is invalid" in registry.problems[0]

"""Every code example a plugin author reads (docs/plugins.md and breedscope.hookspecs) is run
here as written: a guide whose examples do not work is worse than none."""

from __future__ import annotations

import csv
import inspect
import re
import shutil
import textwrap
import types
from pathlib import Path

import pytest

from breedscope import Document, Paragraph, Section, Table, hookspecs, plugins
from tests.helpers import REPO, TINY, cli_process, pip_install_apart, shape_image

GUIDE = REPO / "docs" / "plugins.md"


def guide_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", GUIDE.read_text(encoding="utf-8"), flags=re.DOTALL)


def hookspec_examples() -> dict[str, str]:
    """Each hook's docstring example: the indented block after its ``::``."""
    examples = {}
    for name, function in inspect.getmembers(hookspecs, inspect.isfunction):
        if name.startswith("breedscope_"):
            _, _, after = inspect.getdoc(function).partition("::\n")
            examples[name] = textwrap.dedent(after)
    return examples


def as_module(name: str, source: str) -> types.ModuleType:
    module = types.ModuleType(name)
    exec(compile(source, f"<{name}>", "exec"), module.__dict__)
    return module


def test_every_hook_has_an_example() -> None:
    examples = hookspec_examples()
    assert set(examples) == {
        "breedscope_datasets",
        "breedscope_presets",
        "breedscope_backbones",
        "breedscope_augmentations",
        "breedscope_reporters",
        "breedscope_trackers",
    }
    assert all("@hookimpl" in source for source in examples.values())


@pytest.mark.parametrize(
    "hook,kind,name",
    [
        ("breedscope_datasets", "datasets", "leaves"),
        ("breedscope_presets", "presets", "leaves"),
        ("breedscope_backbones", "backbones", "efficientnet_b0"),
        ("breedscope_augmentations", "augmentations", "stain"),
        ("breedscope_reporters", "reporters", "json"),
        ("breedscope_trackers", "trackers", "epochlog"),
    ],
)
def test_each_hookspec_example_registers_what_it_says(hook: str, kind: str, name: str) -> None:
    module = as_module(f"example_{kind}", hookspec_examples()[hook])
    registry = plugins.load(extra_modules=[module])
    assert registry.problems == []
    assert name in getattr(registry, kind)


def test_the_hookspec_augmentation_and_reporter_examples_do_their_work(tmp_path: Path) -> None:
    import numpy as np

    from breedscope.features.augment import Augmenter

    registry = plugins.load(
        extra_modules=[
            as_module("example_augmentations", hookspec_examples()["breedscope_augmentations"]),
            as_module("example_reporters", hookspec_examples()["breedscope_reporters"]),
        ]
    )
    augmented = Augmenter(registry.augmentations["stain"], seed=1)(
        np.full((16, 16, 3), 120, np.uint8), "0" * 64, 0
    )
    assert augmented.shape == (16, 16, 3)
    path = registry.reporters["json"].render(_document(tmp_path), tmp_path)
    assert '"title": "A run"' in path.read_text()

    from breedscope.runs.tracking import TrackedRun

    tracked = TrackedRun("shapes/run", tmp_path, {}, {})
    tracker = plugins.load(
        extra_modules=[as_module("example_trackers", hookspec_examples()["breedscope_trackers"])]
    )
    log = tracker.trackers["epochlog"].start(tracked)
    log.epoch({"loss": 0.5}, 1, None)
    log.epoch({"loss": 0.25}, 1, "repeat1-fold2")
    assert (tmp_path / "epochs.log").read_text() == "- 1 0.5000\nrepeat1-fold2 1 0.2500\n"


def _document(run_dir: Path) -> Document:
    table = Table(["metric", "value"], [["accuracy", "0.9"]])
    return Document("A run", "run x", run_dir, [Section("Metrics", [Paragraph("Fine."), table])])


def test_the_guides_imports_and_html_reporter_run_as_written(tmp_path: Path) -> None:
    imports, reporter, _dataset = guide_blocks("python")
    exec(imports, {})
    module = as_module("breedscope_html_report", reporter)
    registry = plugins.load(extra_modules=[module])
    assert registry.problems == [] and "html" in registry.reporters
    page = registry.reporters["html"].render(_document(tmp_path), tmp_path).read_text()
    assert "<h2>Metrics</h2>" in page and "<td>0.9</td>" in page


@pytest.mark.whole_run
def test_the_guides_dataset_plugin_installs_fetches_and_trains(tmp_path: Path) -> None:
    # The guide's module, packaged with the entry point the guide names, installed with pip.
    source = guide_blocks("python")[2]
    package = tmp_path / "breedscope-leaves"
    package.mkdir()
    (package / "breedscope_leaves.py").write_text(source)
    (package / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "breedscope-leaves"\nversion = "0.1.0"\n'
        '[project.entry-points.breedscope]\nleaves = "breedscope_leaves"\n'
        '[tool.setuptools]\npy-modules = ["breedscope_leaves"]\n'
    )
    site = tmp_path / "site"
    installed = pip_install_apart(site, str(package))
    assert installed.returncode == 0, installed.stderr

    # A small archive in the layout the guide describes: leaves/<species>/<plant>_<photo>.png
    for species in range(3):
        folder = tmp_path / "archive" / "leaves" / f"species_{species}"
        folder.mkdir(parents=True)
        for photo in range(12):
            image = shape_image(species, seed=species * 100 + photo, size=40)
            image.save(folder / f"plant{species}{photo // 2}_{photo % 2}.png")
    (tmp_path / "archive" / "README.txt").write_text("leaf photos")
    archive = shutil.make_archive(str(tmp_path / "leaf-species"), "zip", root_dir=tmp_path / "archive")

    env = {"PYTHONPATH": str(site)}
    fetched = cli_process("fetch", "leaves", "--from", archive, env=env)
    assert fetched.returncode == 0, fetched.stderr
    assert "Stored leaves: 36 images" in " ".join(fetched.stderr.split())
    home = Path(__import__("os").environ["BREEDSCOPE_HOME"])
    with open(home / "datasets" / "leaves" / "images.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["path"] == "leaves/species_0/plant00_0.png"  # relative to the archive's root
    assert {r["group"] for r in rows if r["label"] == "species_1"} == {f"plant1{i}" for i in range(6)}

    runs = tmp_path / "runs"
    trained = cli_process(
        "run", "--dataset", "leaves", *TINY, "--epochs", "1", "--runs-dir", str(runs), env=env
    )
    assert trained.returncode == 0, trained.stderr
    assert (runs / "leaves" / "run" / "report.pdf").is_file()

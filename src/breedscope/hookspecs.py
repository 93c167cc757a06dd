"""The hooks a breedscope plugin can implement. This module is the whole plugin contract.

A plugin is a plain module with ``@hookimpl`` functions, registered under the entry-point group
``breedscope`` in its ``pyproject.toml``::

    [project.entry-points.breedscope]
    leaves = "breedscope_leaves"

Every hook returns a list of descriptions; breedscope calls each plugin's hook separately, so a
plugin that raises is reported and skipped while the others keep working. A hook may take a
parameter named ``context`` (a :class:`PluginContext`) or none at all. The names a plugin needs
are public: ``from breedscope import hookimpl, DatasetSpec, ...``. A misspelt hook name, or two
plugins giving one name to different things, is reported by ``breedscope plugins``.

Every example below is run by the test suite (``tests/test_plugin_guide.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from breedscope.config.presets import Preset
    from breedscope.data.spec import DatasetSpec
    from breedscope.features.augment import AugmentPreset
    from breedscope.model.backbone import BackboneSpec
    from breedscope.report.reporter import ReporterSpec
    from breedscope.runs.tracking import TrackerSpec

PROJECT = "breedscope"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@dataclass(frozen=True)
class PluginContext:
    """What breedscope tells a hook that takes a ``context`` parameter.

    Attributes:
        home: the data cache (``$BREEDSCOPE_HOME``): fetched datasets, downloads, features.
        version: the breedscope version loading the plugin.
    """

    home: Path
    version: str


@hookspec
def breedscope_datasets(context: PluginContext) -> list[DatasetSpec]:
    """Return the datasets this plugin can fetch and read.

    Example: a dataset of leaf photos laid out as ``leaves/<species>/<image>`` on Kaggle;
    ``under`` names the folder that holds the class folders, and image paths stay relative to
    the archive's root whatever folder is scanned::

        from breedscope import DatasetSpec, hookimpl, scan_class_folders

        @hookimpl
        def breedscope_datasets():
            return [
                DatasetSpec(
                    name="leaves",
                    description="Leaf species photos",
                    kaggle=("someone/leaf-species",),
                    scan=lambda root: scan_class_folders(root, under="leaves"),
                )
            ]
    """


@hookspec
def breedscope_presets(context: PluginContext) -> list[Preset]:
    """Return study presets (the values of ``--preset``): a layer of settings, and optionally the
    study whose reported figures the report sets beside the run's.

    Example: a protocol for the leaves dataset, and the figure its paper reported::

        from breedscope import Preset, Study, hookimpl

        @hookimpl
        def breedscope_presets():
            return [
                Preset(
                    name="leaves",
                    description="Leaf species: 70/15/15, frozen MobileNetV2",
                    config={
                        "dataset": {"name": "leaves"},
                        "split": {"train": 0.7, "val": 0.15, "test": 0.15},
                        "train": {"epochs": 15},
                    },
                    study=Study(title="Leaf species with MobileNetV2", reported={"accuracy": 0.93}),
                )
            ]
    """


@hookspec
def breedscope_backbones(context: PluginContext) -> list[BackboneSpec]:
    """Return the backbones this plugin provides (the value of ``model.backbone``).

    Example: EfficientNetB0 from Keras applications::

        import keras
        from breedscope import BackboneSpec, hookimpl

        @hookimpl
        def breedscope_backbones():
            return [
                BackboneSpec(
                    name="efficientnet_b0",
                    description="EfficientNetB0, ImageNet",
                    build=lambda size, alpha, weights: keras.applications.EfficientNetB0(
                        include_top=False, weights=weights, input_shape=(size, size, 3)
                    ),
                    # EfficientNet rescales inside the model: pass pixels through.
                    preprocessing=lambda pixel_range: keras.layers.Identity(),
                )
            ]
    """


@hookspec
def breedscope_augmentations(context: PluginContext) -> list[AugmentPreset]:
    """Return named augmentation presets (the value of ``augment.preset``).

    Example: strong colour jitter for stained slides::

        import albumentations as A
        from breedscope import AugmentPreset, hookimpl

        @hookimpl
        def breedscope_augmentations():
            return [
                AugmentPreset(
                    name="stain",
                    description="hue and saturation jitter, free rotation",
                    build=lambda: [A.HueSaturationValue(p=0.8), A.Rotate(limit=180, p=1.0)],
                )
            ]
    """


@hookspec
def breedscope_reporters(context: PluginContext) -> list[ReporterSpec]:
    """Return report formats (the values of ``report.formats``).

    A reporter receives the finished :class:`~breedscope.report.document.Document` (every
    section, table and figure already computed from the stored evaluation) and writes one file.

    Example: a JSON dump of the metrics tables::

        import json
        from breedscope import ReporterSpec, hookimpl

        def render(document, out_dir):
            path = out_dir / "report.json"
            path.write_text(json.dumps(document.to_dict(), indent=2))
            return path

        @hookimpl
        def breedscope_reporters():
            return [ReporterSpec(name="json", description="report as JSON", render=render)]
    """


@hookspec
def breedscope_trackers(context: PluginContext) -> list[TrackerSpec]:
    """Return experiment trackers (the values of ``--track``, ``track`` in a config file).

    For each run, ``start`` receives a :class:`~breedscope.runs.tracking.TrackedRun` (its name,
    directory, settings as ``params`` and ``tags``) and returns an object with three methods:
    ``epoch(metrics, step, fold)`` after every epoch (``fold`` is ``repeat1-fold2`` under
    ``--cv``, otherwise ``None``), ``finished(run_dir)`` once the run's files are written, and
    ``failed(status)``. An exception in any of them is one warning, and the run goes on.

    Example: every epoch's loss, appended to a log beside the run::

        from breedscope import TrackerSpec, hookimpl

        class EpochLog:
            def __init__(self, run):
                self.file = run.run_dir / "epochs.log"

            def epoch(self, metrics, step, fold):
                with open(self.file, "a") as log:
                    log.write(f"{fold or '-'} {step} {metrics['loss']:.4f}\\n")

            def finished(self, run_dir):
                pass

            def failed(self, status):
                pass

        @hookimpl
        def breedscope_trackers():
            return [TrackerSpec(name="epochlog", description="loss per epoch", start=EpochLog)]
    """

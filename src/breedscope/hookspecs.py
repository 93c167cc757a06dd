"""The hooks a breedscope plugin can implement. This module is the whole plugin contract.

A plugin is a plain module with ``@hookimpl`` functions, registered under the entry-point group
``breedscope`` in its ``pyproject.toml``::

    [project.entry-points.breedscope]
    leaves = "breedscope_leaves"

Every hook returns a list of descriptions; breedscope calls each plugin's hook separately, so a
plugin that raises is reported and skipped while the others keep working.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from breedscope.augment import AugmentPreset
    from breedscope.datasets.spec import DatasetSpec
    from breedscope.model import BackboneSpec
    from breedscope.report.reporter import ReporterSpec

PROJECT = "breedscope"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def breedscope_datasets() -> list[DatasetSpec]:
    """Return the datasets this plugin can fetch and read.

    Example: a dataset of leaf photos laid out as ``leaves/<species>/<image>`` on Kaggle::

        from breedscope.datasets.spec import DatasetSpec, scan_class_folders
        from breedscope.hookspecs import hookimpl

        @hookimpl
        def breedscope_datasets():
            return [
                DatasetSpec(
                    name="leaves",
                    description="Leaf species photos",
                    kaggle=("someone/leaf-species",),
                    scan=lambda root: scan_class_folders(root / "leaves"),
                )
            ]
    """


@hookspec
def breedscope_backbones() -> list[BackboneSpec]:
    """Return the backbones this plugin provides (the value of ``model.backbone``).

    Example: EfficientNetB0 from Keras applications::

        import keras
        from breedscope.model import BackboneSpec

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
def breedscope_augmentations() -> list[AugmentPreset]:
    """Return named augmentation presets (the value of ``augment.preset``).

    Example: strong colour jitter for stained slides::

        import albumentations as A
        from breedscope.augment import AugmentPreset

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
def breedscope_reporters() -> list[ReporterSpec]:
    """Return report formats (the values of ``report.formats``).

    A reporter receives the finished :class:`~breedscope.report.document.Document` (every
    section, table and figure already computed from the stored evaluation) and writes one file.

    Example: a JSON dump of the metrics tables::

        import json
        from breedscope.report.reporter import ReporterSpec

        def render(document, out_dir):
            path = out_dir / "report.json"
            path.write_text(json.dumps(document.to_dict(), indent=2))
            return path

        @hookimpl
        def breedscope_reporters():
            return [ReporterSpec(name="json", description="report as JSON", render=render)]
    """

"""breedscope: small-data image classification studies, reproduced with one reliable command.

The public API (``fetch``, ``run``, ``open_run``, ``compare``) and the plugin contract
(``hookimpl`` and the types hooks return) are importable from here. Each name is imported on
first use, so ``import breedscope`` is quick and changes nothing in the importing session.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from breedscope.core.versions import __version__

# public name -> the module that defines it
_EXPORTS = {
    # the Python API
    "fetch": "breedscope.api",
    "run": "breedscope.api",
    "open_run": "breedscope.api",
    "compare": "breedscope.api",
    "audit": "breedscope.api",
    "Audit": "breedscope.api",
    "configure": "breedscope.api",
    "reproduce": "breedscope.api",
    "reproduce_all": "breedscope.api",
    "Reproduction": "breedscope.api",
    "Run": "breedscope.api",
    "Dataset": "breedscope.api",
    "Comparison": "breedscope.api",
    "Export": "breedscope.api",
    "Evaluation": "breedscope.evaluation.metrics",
    "ClassMetrics": "breedscope.evaluation.metrics",
    "BreedscopeError": "breedscope.core.errors",
    "ConfigError": "breedscope.core.errors",
    "DataError": "breedscope.core.errors",
    # the plugin contract
    "hookimpl": "breedscope.hookspecs",
    "PluginContext": "breedscope.hookspecs",
    "DatasetSpec": "breedscope.data.spec",
    "Scan": "breedscope.data.spec",
    "SourceImage": "breedscope.data.spec",
    "scan_class_folders": "breedscope.data.spec",
    "single_top_folder": "breedscope.data.spec",
    "folder_holding": "breedscope.data.spec",
    "is_junk": "breedscope.data.spec",
    "BackboneSpec": "breedscope.model.backbone",
    "AugmentPreset": "breedscope.features.augment",
    "ReporterSpec": "breedscope.report.reporter",
    "TrackerSpec": "breedscope.runs.tracking",
    "TrackedRun": "breedscope.runs.tracking",
    "Preset": "breedscope.config.presets",
    "Study": "breedscope.config.presets",
    "Document": "breedscope.report.document",
    "Section": "breedscope.report.document",
    "Paragraph": "breedscope.report.document",
    "Table": "breedscope.report.document",
    "Figure": "breedscope.report.document",
    "BOLD": "breedscope.report.document",
    "markdown_literal": "breedscope.report.document",
    "markdown_text": "breedscope.report.document",
    "ReverseChannelsAndCenter": "breedscope.model.layers",
    # writing a plugin's files the way breedscope writes its own (whole or not at all)
    "atomic_path": "breedscope.core.atomic",
    "write_text": "breedscope.core.atomic",
}

__all__ = [  # noqa: RUF022 (grouped as in _EXPORTS)
    "__version__",
    "fetch",
    "run",
    "open_run",
    "compare",
    "audit",
    "Audit",
    "configure",
    "reproduce",
    "reproduce_all",
    "Reproduction",
    "Run",
    "Dataset",
    "Comparison",
    "Export",
    "Evaluation",
    "ClassMetrics",
    "BreedscopeError",
    "ConfigError",
    "DataError",
    "hookimpl",
    "PluginContext",
    "DatasetSpec",
    "Scan",
    "SourceImage",
    "scan_class_folders",
    "single_top_folder",
    "folder_holding",
    "is_junk",
    "BackboneSpec",
    "AugmentPreset",
    "ReporterSpec",
    "TrackerSpec",
    "TrackedRun",
    "Preset",
    "Study",
    "Document",
    "Section",
    "Paragraph",
    "Table",
    "Figure",
    "BOLD",
    "markdown_literal",
    "markdown_text",
    "ReverseChannelsAndCenter",
    "atomic_path",
    "write_text",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'breedscope' has no attribute '{name}'")
    value = getattr(import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:
    from breedscope.api import Comparison, Dataset, Export, Run, compare, configure, fetch, open_run, run
    from breedscope.config.presets import Preset, Study
    from breedscope.core.atomic import atomic_path, write_text
    from breedscope.core.errors import BreedscopeError, ConfigError, DataError
    from breedscope.data.spec import (
        DatasetSpec,
        Scan,
        SourceImage,
        folder_holding,
        is_junk,
        scan_class_folders,
        single_top_folder,
    )
    from breedscope.evaluation.metrics import ClassMetrics, Evaluation
    from breedscope.features.augment import AugmentPreset
    from breedscope.hookspecs import PluginContext, hookimpl
    from breedscope.model.backbone import BackboneSpec
    from breedscope.model.layers import ReverseChannelsAndCenter
    from breedscope.report.document import (
        BOLD,
        Document,
        Figure,
        Paragraph,
        Section,
        Table,
        markdown_literal,
        markdown_text,
    )
    from breedscope.report.reporter import ReporterSpec

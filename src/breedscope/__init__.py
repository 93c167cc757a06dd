"""breedscope: small-data image classification studies, reproduced with one reliable command.

The public API (``fetch``, ``run``, ``open_run``, ``compare``) and the plugin contract
(``hookimpl`` and the types hooks return) are importable from here. Each name is imported on
first use, so ``import breedscope`` is quick and changes nothing in the importing session.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("breedscope")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

# public name -> the module that defines it
_EXPORTS = {
    # the Python API
    "fetch": "breedscope.api",
    "run": "breedscope.api",
    "open_run": "breedscope.api",
    "compare": "breedscope.api",
    "configure": "breedscope.api",
    "reproduce": "breedscope.api",
    "reproduce_all": "breedscope.api",
    "Reproduction": "breedscope.api",
    "Run": "breedscope.api",
    "Dataset": "breedscope.api",
    "Comparison": "breedscope.api",
    "Export": "breedscope.api",
    "Evaluation": "breedscope.evaluate",
    "ClassMetrics": "breedscope.evaluate",
    "BreedscopeError": "breedscope.errors",
    "ConfigError": "breedscope.errors",
    "DataError": "breedscope.errors",
    # the plugin contract
    "hookimpl": "breedscope.hookspecs",
    "PluginContext": "breedscope.hookspecs",
    "DatasetSpec": "breedscope.datasets.spec",
    "Scan": "breedscope.datasets.spec",
    "SourceImage": "breedscope.datasets.spec",
    "scan_class_folders": "breedscope.datasets.spec",
    "BackboneSpec": "breedscope.model",
    "AugmentPreset": "breedscope.augment",
    "ReporterSpec": "breedscope.report.reporter",
    "Preset": "breedscope.presets",
    "Study": "breedscope.presets",
    "Document": "breedscope.report.document",
    "Section": "breedscope.report.document",
    "Paragraph": "breedscope.report.document",
    "Table": "breedscope.report.document",
    "Figure": "breedscope.report.document",
}

__all__ = [  # noqa: RUF022 (grouped as in _EXPORTS)
    "__version__",
    "fetch",
    "run",
    "open_run",
    "compare",
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
    "BackboneSpec",
    "AugmentPreset",
    "ReporterSpec",
    "Preset",
    "Study",
    "Document",
    "Section",
    "Paragraph",
    "Table",
    "Figure",
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
    from breedscope.augment import AugmentPreset
    from breedscope.datasets.spec import DatasetSpec, Scan, SourceImage, scan_class_folders
    from breedscope.errors import BreedscopeError, ConfigError, DataError
    from breedscope.evaluate import ClassMetrics, Evaluation
    from breedscope.hookspecs import PluginContext, hookimpl
    from breedscope.model import BackboneSpec
    from breedscope.presets import Preset, Study
    from breedscope.report.document import Document, Figure, Paragraph, Section, Table
    from breedscope.report.reporter import ReporterSpec

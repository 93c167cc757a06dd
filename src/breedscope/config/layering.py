"""How a run's configuration is layered: defaults < the dataset's or the named preset <
``--faithful`` < a config file < settings given as flags or keywords.

The settings table (:data:`SETTINGS`) is the one list of what ``breedscope run`` takes as flags
and ``breedscope.run()`` as keywords; the CLI's options are checked against it.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from breedscope.config import presets
from breedscope.config import settings as config_module
from breedscope.config.presets import Preset
from breedscope.config.settings import RunConfig
from breedscope.core.errors import BreedscopeError, ConfigError


class DatasetDefaults(Protocol):
    """What layering needs from the installed plugins (:class:`breedscope.plugins.Registry`)."""

    @property
    def presets(self) -> Mapping[str, Preset]: ...

    def default_preset(self, dataset: str) -> str | None: ...

    def known_datasets(self) -> list[str]: ...


def config_layers(
    preset_name: str | None, file_layer: dict, flag_layer: dict, faithful: bool, registry: DatasetDefaults
) -> list[dict]:
    """Defaults < the dataset's or the named preset < ``--faithful`` < config file < flags."""
    dataset_name = (
        flag_layer.get("dataset", {}).get("name")
        or file_layer.get("dataset", {}).get("name")
        or config_module.DatasetConfig.model_fields["name"].default
    )
    preset_name = preset_name or file_layer.get("preset")
    if preset_name is None:
        preset_name = registry.default_preset(dataset_name)
    preset = presets.get(preset_name, registry.presets) if preset_name else None
    if faithful and (preset is None or preset.study is None):
        raise BreedscopeError(
            f"--faithful reproduces a study's protocol, and preset '{preset_name}' has none; "
            f"use one of {', '.join(n for n, p in registry.presets.items() if p.study)}."
        )
    layers: list[dict] = []
    if preset is not None:
        layers += [preset.config, {"preset": preset.name}]
        if faithful:
            layers += [preset.faithful, {"faithful": True}]
    return [*layers, file_layer, flag_layer]


# The settings ``breedscope run`` takes as flags and ``breedscope.run()`` as keywords, and where
# each lands in the configuration. One table, so the CLI and the Python API cannot drift.
SETTINGS: dict[str, str] = {
    "dataset": "dataset.name",
    "classes": "dataset.classes",
    "exclude": "dataset.exclude",
    "epochs": "train.epochs",
    "batch_size": "train.batch_size",
    "lr": "train.learning_rate",
    "seed": "train.seed",
    "feature_cache": "train.feature_cache",
    "runtime": "train.feature_runtime",
    "patience": "train.patience",
    "fine_tune_layers": "train.fine_tune_layers",
    "fine_tune_epochs": "train.fine_tune_epochs",
    "fine_tune_lr": "train.fine_tune_learning_rate",
    "strategy": "train.strategy",
    "mixed_precision": "train.mixed_precision",
    "image_size": "model.image_size",
    "alpha": "model.alpha",
    "weights": "model.weights",
    "backbone": "model.backbone",
    "augment": "augment.preset",
    "views": "augment.views",
    "split": "split",
    "balance": "balance.policy",
    "cap": "balance.cap",
    "formats": "report.formats",
    "name": "name",
    "runs_dir": "runs_dir",
    "manifest": "manifest",
    "cv": "cv.folds",
    "repeats": "cv.repeats",
    "operating_point": "decision.operating_point",
    "positive": "decision.positive",
    "track": "track",
}


def settings_layer(**settings: object) -> dict:
    """A config layer from keyword settings (names of :data:`SETTINGS`); ``None`` overrides nothing.

    ``seed`` seeds the split as well as training, as one seed should; ``split`` is a mapping such
    as ``{"train": 0.8, "val": 0.1, "test": 0.1}``.
    """
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        close = [difflib.get_close_matches(u, SETTINGS, n=1) for u in unknown]
        hints = "".join(f" (did you mean '{c[0]}'?)" for c in close if c)
        raise ConfigError(
            f"Unknown setting {', '.join(repr(u) for u in unknown)}{hints}; known: {', '.join(SETTINGS)}."
        )
    layer: dict = {}
    for key, value in settings.items():
        if value is None:
            continue
        if isinstance(value, Path):
            value = str(value)
        section, _, field = SETTINGS[key].partition(".")
        if field:
            layer.setdefault(section, {})[field] = value
        elif isinstance(value, dict):
            layer.setdefault(section, {}).update(value)
        else:
            layer[section] = value
    if settings.get("seed") is not None:
        layer.setdefault("split", {})["seed"] = settings["seed"]
    return layer


def resolve_config(
    registry: DatasetDefaults,
    preset: str | None = None,
    config_file: Path | dict | None = None,
    faithful: bool = False,
    **settings: object,
) -> RunConfig:
    """Defaults < the dataset's or the named preset < ``faithful`` < a config file (or mapping)
    < settings: what ``breedscope run`` and ``breedscope.run()`` both do."""
    if isinstance(config_file, dict):
        file_layer = config_file
    else:
        file_layer = config_module.read_file(Path(config_file)) if config_file else {}
    layers = config_layers(preset, file_layer, settings_layer(**settings), faithful, registry)
    return config_module.build(layers, known_datasets=registry.known_datasets())

"""Study presets: a study's protocol as a layer of config values, and the figures it reported.

Presets come from plugins (``breedscope_presets``); the five studies breedscope reproduces are
in ``breedscope_plugins.studies``. Where a study did something unsound, the preset keeps
our sound default and says so in ``differences``; ``faithful`` holds the study's own choice,
applied with ``--faithful`` for a like-for-like comparison.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from breedscope.core.errors import ConfigError


@dataclass(frozen=True)
class Study:
    title: str
    reported: dict[str, float]  # metric key (see report.compare) -> value as the paper states it
    per_class_f1: dict[str, float] = field(default_factory=dict)  # dataset label -> F1
    notes: tuple[str, ...] = ()
    # The data the paper used, as it states it (``None``: not stated), set beside the run's on
    # the reproduction page: a gap in figures may be a gap in data.
    images: int | None = None
    test_images: int | None = None
    classes: int | None = None
    source: str = ""


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    config: dict[str, Any]
    study: Study | None = None
    faithful: dict[str, Any] = field(default_factory=dict)
    differences: tuple[str, ...] = ()


def get(name: str, presets: Mapping[str, Preset]) -> Preset:
    """The preset ``name`` among ``presets`` (a registry's), or a sentence with the closest name."""
    if name not in presets:
        close = difflib.get_close_matches(name, presets, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"preset: unknown preset '{name}'.{hint} Known: {', '.join(presets)}.")
    return presets[name]

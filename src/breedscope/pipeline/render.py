"""Render a run's report in the requested formats with the installed reporter plugins."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from breedscope.config.presets import Preset
from breedscope.plugins import Registry
from breedscope.report.build import build_document
from breedscope.report.reporter import ReporterSpec


def render(run_dir: Path, reporters: list[ReporterSpec], presets: Mapping[str, Preset]) -> list[Path]:
    """Build the run's document once and let each reporter write its file."""
    document = build_document(run_dir, presets)
    return [reporter.render(document, run_dir) for reporter in reporters]


def render_reports(run_dir: Path, formats: list[str], registry: Registry) -> list[Path]:
    """:func:`render` with the reporters named in ``formats`` (all looked up before drawing)."""
    reporters = [registry.pick("reporters", name) for name in formats]
    return render(run_dir, reporters, registry.presets)

"""Render a run's report in the requested formats with the installed reporter plugins."""

from __future__ import annotations

from pathlib import Path

from breedscope.plugins import Registry
from breedscope.report.build import build_document


def render_reports(run_dir: Path, formats: list[str], registry: Registry) -> list[Path]:
    reporters = [registry.pick("reporters", name) for name in formats]  # fail before drawing anything
    document = build_document(run_dir, registry.presets)
    return [reporter.render(document, run_dir) for reporter in reporters]

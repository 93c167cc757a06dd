"""What a reporter plugin provides, and rendering a document in the requested formats."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from breedscope.report.document import Document


@dataclass(frozen=True)
class ReporterSpec:
    """A report format: ``render(document, out_dir)`` writes one file and returns its path."""

    name: str
    description: str
    render: Callable[[Document, Path], Path]

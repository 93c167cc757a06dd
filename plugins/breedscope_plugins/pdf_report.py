"""The ``pdf`` reporter: an A4 ``report.pdf`` (see :mod:`breedscope_plugins.pdf_document`).

fpdf2 is imported when a PDF is rendered, not when plugins load: a run that writes only
Markdown does not pay for it (0.15 s).
"""

from __future__ import annotations

from pathlib import Path

from breedscope import Document, ReporterSpec, hookimpl


def render(document: Document, out_dir: Path) -> Path:
    from breedscope_plugins.pdf_document import render_pdf

    return render_pdf(document, out_dir)


@hookimpl
def breedscope_reporters() -> list[ReporterSpec]:
    return [ReporterSpec("pdf", "A4 PDF report (report.pdf), fonts embedded", render)]

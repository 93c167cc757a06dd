"""The ``markdown`` reporter: ``report.md`` beside the figures it links to."""

from __future__ import annotations

from pathlib import Path

from breedscope import (
    Document,
    Figure,
    Paragraph,
    ReporterSpec,
    Table,
    hookimpl,
    markdown_literal,
    markdown_text,
    write_text,
)


def render(document: Document, out_dir: Path) -> Path:
    # Every string of the document is text, not markup (names come from data and users).
    lines = [f"# {markdown_literal(document.title)}", "", f"_{markdown_text(document.subtitle)}_", ""]
    for section in document.sections:
        lines += [f"## {markdown_literal(section.title)}", ""]
        for block in section.blocks:
            if isinstance(block, Paragraph):
                lines.append(block.markdown())
            elif isinstance(block, Table):
                lines += block.markdown_lines()
            elif isinstance(block, Figure):
                lines.append(f"![{markdown_literal(block.caption)}]({block.path.as_posix()})")
            lines.append("")
    path = out_dir / "report.md"
    write_text(path, "\n".join(lines).rstrip() + "\n")
    return path


@hookimpl
def breedscope_reporters() -> list[ReporterSpec]:
    return [ReporterSpec("markdown", "Markdown report (report.md) with linked figures", render)]

"""An example third-party breedscope plugin: the ``html`` reporter.

It renders the same :class:`~breedscope.report.document.Document` as the built-in reporters,
so it needs to know nothing about metrics: ``breedscope report RUN_DIR --format html``.
"""

from __future__ import annotations

import html
from pathlib import Path

from breedscope import Document, Figure, Paragraph, ReporterSpec, Table, hookimpl

STYLE = (
    "body{font-family:sans-serif;max-width:60em;margin:auto}table{border-collapse:collapse}"
    "td,th{border-bottom:1px solid #ccc;padding:2px 8px;text-align:left}img{max-width:100%}"
)


def _block(block) -> str:
    if isinstance(block, Paragraph):
        text = html.escape(block.text)
        while "**" in text:  # the document marks bold text the Markdown way
            text = text.replace("**", "<b>", 1).replace("**", "</b>", 1)
        return f"<p>{text}</p>"
    if isinstance(block, Table):
        head = "".join(f"<th>{html.escape(h)}</th>" for h in block.header)
        rows = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in block.rows
        )
        caption = f"<caption>{html.escape(block.caption)}</caption>" if block.caption else ""
        return f"<table>{caption}<tr>{head}</tr>{rows}</table>"
    if isinstance(block, Figure):
        return (
            f'<figure><img src="{html.escape(block.path.as_posix())}" alt="">'
            f"<figcaption>{html.escape(block.caption)}</figcaption></figure>"
        )
    return ""


def render(document: Document, out_dir: Path) -> Path:
    body = [f"<h1>{html.escape(document.title)}</h1><p><i>{html.escape(document.subtitle)}</i></p>"]
    for section in document.sections:
        body.append(f"<h2>{html.escape(section.title)}</h2>")
        body.extend(_block(block) for block in section.blocks)
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(document.title)}</title>"
        f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n"
    )
    path = out_dir / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


@hookimpl
def breedscope_reporters():
    return [ReporterSpec(name="html", description="One HTML page (report.html)", render=render)]

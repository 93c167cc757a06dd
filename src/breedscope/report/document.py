"""A report as data: sections of paragraphs, tables and figures, with no format in it.

Every reporter renders the same :class:`Document`, so the Markdown and the PDF cannot drift.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from breedscope.core.markdown import markdown_literal

BOLD = re.compile(r"(\*\*.+?\*\*)")  # the one markup a document's text holds


def markdown_text(text: str) -> str:
    """A document's text as Markdown: its ``**bold**`` kept, everything else literal."""
    parts = BOLD.split(text)
    return "".join(
        f"**{markdown_literal(part[2:-2])}**" if BOLD.fullmatch(part) else markdown_literal(part)
        for part in parts
    )


@dataclass
class Paragraph:
    text: str  # plain text; ``**bold**`` is its only markup

    def markdown(self) -> str:
        return markdown_text(self.text)


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    caption: str = ""

    def markdown_lines(self) -> list[str]:
        """The table in Markdown (every cell literal text), its caption in italics below."""
        cell = markdown_literal
        lines = [
            "| " + " | ".join(cell(h) for h in self.header) + " |",
            "|" + "|".join("---" for _ in self.header) + "|",
        ]
        lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in self.rows]
        if self.caption:
            lines += ["", f"*{markdown_text(self.caption)}*"]
        return lines

    def _repr_markdown_(self) -> str:  # a table displays itself in a notebook
        return "\n".join(self.markdown_lines())


@dataclass
class Figure:
    path: Path  # relative to the run directory
    caption: str
    width_fraction: float = 1.0  # of the text width, for page-based formats


Block = Paragraph | Table | Figure


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Document:
    title: str
    subtitle: str
    run_dir: Path
    sections: list[Section] = field(default_factory=list)

    def to_dict(self) -> dict:
        def block_dict(block: Block) -> dict:
            return {
                "type": type(block).__name__.lower(),
                **{k: str(v) if isinstance(v, Path) else v for k, v in asdict(block).items()},
            }

        return {
            "title": self.title,
            "subtitle": self.subtitle,
            "sections": [
                {"title": s.title, "blocks": [block_dict(b) for b in s.blocks]} for s in self.sections
            ],
        }

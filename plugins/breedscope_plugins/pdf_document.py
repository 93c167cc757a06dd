"""The ``pdf`` reporter's renderer: an A4 ``report.pdf`` with embedded fonts and page numbers (fpdf2).

fpdf2 is pure Python (no system libraries, unlike WeasyPrint), embeds TrueType fonts and
has real tables that wrap long cells. The font is DejaVu Sans, which matplotlib ships.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
from fpdf import FPDF
from fpdf.fonts import FontFace
from PIL import Image

from breedscope import BOLD, Document, Figure, Paragraph, Table, atomic_path

FONT_DIR = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
FONT = "DejaVu"


class _Pdf(FPDF):
    def __init__(self, title: str) -> None:
        super().__init__(format="A4")
        self.report_title = title
        self.add_font(FONT, "", FONT_DIR / "DejaVuSans.ttf")
        self.add_font(FONT, "B", FONT_DIR / "DejaVuSans-Bold.ttf")
        self.add_font(FONT, "I", FONT_DIR / "DejaVuSans-Oblique.ttf")
        self.set_margins(18, 18, 18)
        self.set_auto_page_break(True, margin=18)
        self.set_title(title)
        self.set_creator("breedscope")

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(FONT, "", 8)
        self.set_text_color(110)
        self.cell(0, 5, f"{self.report_title} — page {self.page_no()} of {{nb}}", align="C")
        self.set_text_color(0)


def _paragraph(pdf: _Pdf, block: Paragraph) -> None:
    # Only **bold** is markup in the document; fpdf2's own markdown would also eat "--flags".
    for part in BOLD.split(block.text):
        bold = part.startswith("**") and part.endswith("**")
        pdf.set_font(FONT, "B" if bold else "", 9.5)
        pdf.write(5, part[2:-2] if bold else part)
    pdf.ln(7)


def _table(pdf: _Pdf, block: Table) -> None:
    pdf.set_font(FONT, "", 8 if len(block.header) > 3 else 8.5)
    widths = None
    if len(block.header) == 2:
        widths = (35, 65)
    elif block.header and block.header[0] == "image":
        widths = (52, 18, 18, 12)
    with pdf.table(
        col_widths=widths,
        headings_style=FontFace(emphasis="BOLD", fill_color=(230, 236, 245)),
        line_height=4.6,
        text_align="LEFT",
        borders_layout="HORIZONTAL_LINES",
    ) as table:
        for values in [block.header, *block.rows]:
            row = table.row()
            for value in values:
                row.cell(str(value))
    if block.caption:
        pdf.set_font(FONT, "I", 8)
        pdf.multi_cell(0, 4.5, block.caption, align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)


def _figure_height(pdf: _Pdf, block: Figure, run_dir: Path) -> float:
    with Image.open(run_dir / block.path) as image:
        return pdf.epw * block.width_fraction * image.height / image.width


# A figure that nearly fits the rest of the page is drawn smaller there, rather than moved to
# the next page and leaving most of this one blank.
SHRINK_TO_FIT = 0.6


def _figure(pdf: _Pdf, block: Figure, run_dir: Path) -> None:
    width = pdf.epw * block.width_fraction
    height = _figure_height(pdf, block, run_dir)
    room = pdf.page_break_trigger - pdf.get_y() - 8  # the caption's line below it
    if height > room:
        if room >= SHRINK_TO_FIT * height:
            width *= room / height
        else:
            pdf.add_page()
    pdf.image(str(run_dir / block.path), x=pdf.l_margin + (pdf.epw - width) / 2, w=width)
    pdf.set_font(FONT, "I", 8)
    pdf.multi_cell(0, 4.5, block.caption, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)


def render_pdf(document: Document, out_dir: Path) -> Path:
    pdf = _Pdf(document.title)
    pdf.add_page()
    pdf.set_font(FONT, "B", 16)
    # Left-aligned: fpdf2 justifies by default, which spreads a title's words across the line.
    pdf.multi_cell(0, 8, document.title, align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, "I", 9)
    pdf.multi_cell(0, 5, document.subtitle, align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    for section in document.sections:
        first = section.blocks[0] if section.blocks else None
        needed = 30 + (_figure_height(pdf, first, document.run_dir) if isinstance(first, Figure) else 0)
        if pdf.get_y() + needed > pdf.page_break_trigger:  # keep a heading with what follows it
            pdf.add_page()
        pdf.set_font(FONT, "B", 12.5)
        pdf.cell(0, 8, section.title, new_x="LMARGIN", new_y="NEXT")
        for block in section.blocks:
            if isinstance(block, Paragraph):
                _paragraph(pdf, block)
            elif isinstance(block, Table):
                _table(pdf, block)
            elif isinstance(block, Figure):
                _figure(pdf, block, document.run_dir)
    path = out_dir / "report.pdf"
    with atomic_path(path) as tmp:
        pdf.output(str(tmp))
    return path

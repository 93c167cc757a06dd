"""Tables in a terminal of any width, 80 columns included: a cell wraps onto more lines where a
line may break (after a space, and after the ``/``, ``-``, en dash, ``,`` or ``;`` inside a path,
a Kaggle slug or an interval), never inside a name or number; only a single token wider than its
whole column is shortened, with an ellipsis in its middle. A table of runs too wide for the
terminal is turned on its side, one column per run, so that an interval is always read whole."""

from __future__ import annotations

from collections.abc import Sequence

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

# A line may break after one of these where it joins two tokens: "-" and the en dash of intervals
# included, "_" not (a snake_case name is one name).
SEPARATORS = "/\\-\u2013,;"
NARROWEST = 6  # no column is made narrower than this to fit: "abc…yz" still says something


def pieces(text: str) -> list[str]:
    """``text`` cut where a line may break: after a run of spaces, and after a separator that
    joins two tokens (``bccd-white``, ``newcells/corrupt.jpg``, an interval's en dash; not the
    sign of ``-0.5``). Joined again, the pieces are ``text``."""
    cuts = [0]
    for i, char in enumerate(text[:-1]):
        after, before = text[i + 1], text[i - 1] if i else " "
        ends_spaces = char.isspace() and not after.isspace()
        joins = char in SEPARATORS and not (after.isspace() or before.isspace() or before in SEPARATORS)
        if ends_spaces or joins:
            cuts.append(i + 1)
    return [text[a:b] for a, b in zip(cuts, [*cuts[1:], len(text)], strict=True) if text[a:b]]


def as_text(cell: object) -> Text:
    """A cell as rich text: a string is console markup (``[red]...[/]``), as ``Table`` reads it."""
    return cell if isinstance(cell, Text) else Text.from_markup(str(cell))


def longest_piece(text: str) -> int:
    """The widest part of ``text`` no line may break: the narrowest it wraps to whole."""
    return max((cell_len(piece.rstrip()) for line in text.split("\n") for piece in pieces(line)), default=0)


def widest_line(text: str) -> int:
    return max(cell_len(line) for line in text.split("\n"))


def shorten(line: Text, width: int) -> Text:
    """``line`` in ``width`` cells, its middle replaced by an ellipsis (its start and its end,
    such as a file's extension, are what tell tokens apart)."""
    if cell_len(line.plain) <= width:
        return line
    head, tail = width // 2, width - 1 - width // 2
    shortened = line[:head]
    shortened.append("…")
    return shortened + line[len(line) - tail :] if tail else shortened


def wrap(cell: object, width: int) -> Text:
    """The cell (markup or text) on lines of at most ``width`` cells, broken between
    :func:`pieces`, its styles kept."""
    text = as_text(cell)
    offsets: list[int] = []
    start = 0
    for paragraph in text.plain.split("\n"):
        line_start, position = start, start
        for piece in pieces(paragraph):
            if (
                position > line_start
                and cell_len(text.plain[line_start : position + len(piece)].rstrip()) > width
            ):
                offsets.append(position)
                line_start = position
            position += len(piece)
        start += len(paragraph) + 1
        offsets.append(start)  # after the newline: Text.divide keeps it at the line's end
    lines = text.divide(offsets[:-1])
    return Text("\n").join(shorten(_without_end_space(line), width) for line in lines)


def _without_end_space(line: Text) -> Text:
    line.rstrip()  # in place
    return line


def column_widths(columns: Sequence[Sequence[str]], available: int, whole: Sequence[int] = ()) -> list[int]:
    """Widths for ``columns`` (each its header and cells) that fit ``available`` cells: each
    column as wide as its widest line when they all fit; otherwise the widest columns are capped
    (never below their longest unbreakable piece; columns in ``whole`` not at all, unless that
    would shorten a value), so that short cells stay on one line and long ones wrap; when even
    that does not fit, the widest columns are narrowed further (their longest pieces are then
    shortened)."""
    natural = [max(widest_line(cell) for cell in column) for column in columns]
    if sum(natural) <= available:
        return natural
    least = [
        natural[i] if i in whole else max(map(longest_piece, column)) for i, column in enumerate(columns)
    ]
    if sum(least) > available and whole:
        return column_widths(columns, available)  # the names wrap rather than any value is shortened

    def capped(cap: int) -> list[int]:
        return [min(n, max(low, cap)) for n, low in zip(natural, least, strict=True)]

    if sum(least) > available:
        widths = least
        while sum(widths) > available and max(widths) > NARROWEST:
            widths[widths.index(max(widths))] -= 1
        return widths
    cap = max(c for c in range(max(natural) + 1) if sum(capped(c)) <= available)
    widths = capped(cap)
    for index in sorted(range(len(widths)), key=lambda i: natural[i] - widths[i], reverse=True):
        if sum(widths) < available and widths[index] < natural[index]:
            widths[index] += 1  # the cells' spare room, one by one to the columns lacking most
    return widths


def natural_width(header: Sequence[str], rows: Sequence[Sequence[str]]) -> int:
    """The width the table takes with no cell folded (borders and padding included)."""
    columns = [[h, *(row[i] for row in rows)] for i, h in enumerate(header)]
    cells = sum(max(widest_line(as_text(cell).plain) for cell in column) for column in columns)
    return cells + borders(len(header))


def borders(columns: int) -> int:
    """The cells a table's rules and padding take: "│ " before each cell, " " after, the last "│"."""
    return 3 * columns + 1


def sideways(header: Sequence[str], rows: Sequence[Sequence[str]]) -> tuple[list[str], list[list[str]]]:
    """The table turned: the first column's values head the columns, the other headers head rows."""
    turned_header = [str(header[0]), *(str(row[0]) for row in rows)]
    turned_rows = [[str(h), *(str(row[i]) for row in rows)] for i, h in enumerate(header) if i > 0]
    return turned_header, turned_rows


def show(
    console: Console,
    title: str,
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    right: Sequence[str] = (),
    may_turn: bool = False,
) -> None:
    """Print a table that fits the terminal, its cells wrapped between tokens; columns named in
    ``right`` are right-aligned. With ``may_turn``, a table wider than the terminal is printed
    turned on its side, its first column (the names) kept on one line."""
    if may_turn and rows and natural_width(header, rows) > console.width:
        header, rows = sideways(header, rows)
        right = ()
    names = [as_text(name) for name in header]
    cells = [[as_text(cell) for cell in row] for row in rows]
    columns = [[name.plain, *(row[i].plain for row in cells)] for i, name in enumerate(names)]
    widths = column_widths(columns, console.width - borders(len(header)), whole=(0,) if may_turn else ())
    table = Table(title=title)
    for column, name, width in zip(header, names, widths, strict=True):
        justify = "right" if column in right else "left"
        table.add_column(wrap(name, width), justify=justify, width=width, no_wrap=True)
    for row in cells:
        table.add_row(*(wrap(cell, width) for cell, width in zip(row, widths, strict=True)))
    console.print(table, soft_wrap=False)  # centred titles

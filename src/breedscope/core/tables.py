"""Tables in a terminal of any width: a cell folds onto more lines and is never cut short
(``acc…``, ``0.9…``), and a table of runs too wide for the terminal is turned on its side,
one column per run, so that an interval is always read whole."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table


def natural_width(header: Sequence[str], rows: Sequence[Sequence[str]]) -> int:
    """The width the table takes with no cell folded (borders and padding included)."""
    columns = [[str(h), *(str(row[i]) for row in rows)] for i, h in enumerate(header)]
    return sum(max(len(cell) for cell in column) + 3 for column in columns) + 1


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
    """Print a table whose cells fold; columns named in ``right`` are right-aligned. With
    ``may_turn``, a table wider than the terminal is printed turned on its side."""
    if may_turn and rows and natural_width(header, rows) > console.width:
        header, rows = sideways(header, rows)
        right = ()
    table = Table(title=title)
    for index, column in enumerate(header):
        table.add_column(
            str(column),
            justify="right" if column in right else "left",
            overflow="fold",
            no_wrap=index == 0 and may_turn,  # a metric's or run's name stays on one line
        )
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    console.print(table, soft_wrap=False)  # centred titles; cells wrap inside their columns

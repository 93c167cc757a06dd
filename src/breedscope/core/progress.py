"""Progress bars for long work: on stderr in a terminal, as a live widget in Jupyter (which
needs ``ipywidgets``: ``pip install breedscope[notebook]``; Colab and Kaggle have it), and
quiet when output goes to a file or a pipe."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

# Soft wrap: a message is never broken by inserted newlines, so paths and commands in it can be
# copied whole from any terminal (the terminal wraps long lines itself).
console = Console(stderr=True, soft_wrap=True)


def _shows_bars() -> bool:
    if console.is_terminal:
        return True
    if not console.is_jupyter:
        return False
    return importlib.util.find_spec("ipywidgets") is not None  # rich draws notebook bars with it


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """Show a bar for ``total`` steps; yields ``advance(n)``."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False, disable=not _shows_bars()) as bar:
        task = bar.add_task(description, total=total)
        yield lambda steps=1: bar.advance(task, steps)

"""Progress bars for long work: on stderr in a terminal, as a live widget in Jupyter (which
needs ``ipywidgets``: ``pip install breedscope[notebook]``; Colab and Kaggle have it), and
quiet when output goes to a file or a pipe."""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import rich.console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from breedscope.core.errors import OutputClosed


class Console(rich.console.Console):
    """rich's console, except where the reader of its output has gone (``breedscope ... | head``):
    rich would end the process there with exit code 1, the code of breedscope's own faults; this
    one raises OutputClosed, for the command line to end on."""

    def on_broken_pipe(self) -> None:
        self.quiet = True  # nothing more to write to
        raise OutputClosed("the reader of its output went away (a pipe into head, say)")


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
    # In a notebook every redraw is a widget message to the front end: rich's timer would send
    # ten a second for as long as a step lasts, whether or not anything moved. There the bar is
    # drawn by the thread that advances it instead (below).
    notebook = console.is_jupyter
    shown = _shows_bars()
    with Progress(
        *columns, console=console, transient=False, disable=not shown, auto_refresh=not notebook
    ) as bar:
        task = bar.add_task(description, total=total)
        if not notebook:
            yield lambda steps=1: bar.advance(task, steps)
            return
        # A notebook's bar is drawn by the thread that advances it, at most ten times a second,
        # and once more at the end, so that it shows where it ended.
        drawn = [0.0]

        def advance(steps: int = 1) -> None:
            bar.advance(task, steps)
            if time.monotonic() - drawn[0] > 0.1:
                bar.refresh()
                drawn[0] = time.monotonic()

        try:
            yield advance
        finally:
            bar.refresh()


class LiveLines:
    """Lines a long step prints one by one (an epoch each): in a terminal, each on its own line;
    in a notebook, one output that grows in place, instead of one output per line."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.handle = None

    def add(self, text: str) -> None:
        if not console.is_jupyter:
            console.print(text)
            return
        from IPython.display import display

        self.lines.append(text)
        content = {"text/plain": "\n".join(self.lines)}
        if self.handle is None:
            self.handle = display(content, raw=True, display_id=True)
        else:
            self.handle.update(content, raw=True)

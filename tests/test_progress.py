"""Progress (core/progress.py): bars in a terminal and in a notebook."""

from __future__ import annotations

import threading

import pytest

from breedscope.core import progress


def _redraw_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if type(t).__name__ == "_RefreshThread"]


def test_a_notebooks_bar_is_drawn_only_by_the_thread_that_advances_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each redraw is a widget message; from a timer, ten a second whether or not the bar moved.
    pytest.importorskip("ipywidgets", reason="a notebook's bars need ipywidgets")
    import IPython.display

    monkeypatch.setattr(progress.console, "is_jupyter", True)
    monkeypatch.setattr(IPython.display, "display", lambda *objects, **options: None)  # no kernel here
    with progress.progress_bar("Predicting", total=3) as advance:
        assert _redraw_threads() == []
        advance(3)


def test_a_terminals_bar_still_redraws_on_its_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "_shows_bars", lambda: True)
    with progress.progress_bar("Predicting", total=3) as advance:
        assert len(_redraw_threads()) == 1  # the elapsed time moves while a step runs
        advance(3)

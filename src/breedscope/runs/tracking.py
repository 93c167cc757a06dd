"""Experiment trackers (``--track mlflow``): plugins that log a run as it goes.

A tracker plugin provides a :class:`TrackerSpec`; for each run, ``start`` receives a
:class:`TrackedRun` and returns a :class:`Tracker`, which is told of every epoch (with the fold
under cross-validation) and of the run's end. A tracker that fails (a store that is unreachable
or refuses) is one warning, and the run goes on without it: tracking never costs a run.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from rich.markup import escape

from breedscope.core.errors import ConfigError
from breedscope.core.progress import console


@dataclass(frozen=True)
class TrackedRun:
    """What a tracker is told when a run starts."""

    name: str  # DATASET/RUN
    run_dir: Path
    params: dict[str, str]  # the run's settings, flattened: ``train.epochs`` -> ``"15"``
    tags: dict[str, str]  # dataset, its handle or source, the manifest's SHA-256, the preset


class Tracker(Protocol):
    def epoch(self, metrics: dict[str, float], step: int, fold: str | None) -> None:
        """An epoch ended: its loss and accuracy (and validation's); ``fold`` under ``--cv``."""

    def finished(self, run_dir: Path) -> None:
        """The run succeeded: its files (``evaluation.json``, reports, manifest) are written."""

    def failed(self, status: str) -> None:
        """The run ended otherwise: ``interrupted`` or ``failed``."""


@dataclass(frozen=True)
class TrackerSpec:
    """An experiment tracker a plugin provides (a value of ``--track``)."""

    name: str
    description: str
    start: Callable[[TrackedRun], Tracker]
    requires: tuple[str, ...] = ()  # modules it imports: missing ones are named before the run
    install: str = ""  # how to install them, e.g. pip install "breedscope[mlflow]"

    def check(self) -> None:
        missing = [m for m in self.requires if importlib.util.find_spec(m) is None]
        if missing:
            install = self.install or "pip install " + " ".join(missing)
            raise ConfigError(
                f"--track {self.name} needs {', '.join(missing)}, which is not installed: {install}."
            )


def flat(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"train": {"epochs": 15}}`` -> ``{"train.epochs": "15"}``."""
    out: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out |= flat(value, f"{name}.")
        else:
            out[name] = "" if value is None else str(value)
    return out


@dataclass
class _Tracking:
    """The trackers of the run in progress; each failure drops one tracker with a warning."""

    trackers: dict[str, Tracker] = field(default_factory=dict)
    fold: str | None = None

    def call(self, what: str, *arguments: Any) -> None:
        for name, tracker in list(self.trackers.items()):
            try:
                getattr(tracker, what)(*arguments)
            except Exception as exc:  # a tracker must never end a run
                del self.trackers[name]
                _warn(name, exc)


def _warn(name: str, exc: BaseException) -> None:
    reason = " ".join(str(exc).split())[:300] or type(exc).__name__
    console.print(
        f"[yellow]warning:[/] tracking with {name} failed ({escape(reason)}); the run goes on and "
        "is kept, without it."
    )


_CURRENT: ContextVar[_Tracking | None] = ContextVar("breedscope_tracking", default=None)


@contextlib.contextmanager
def tracked(specs: list[TrackerSpec], run: TrackedRun) -> Iterator[_Tracking]:
    """Start every tracker for ``run``; their epochs and end are reported while this lasts."""
    tracking = _Tracking()
    for spec in specs:
        try:
            tracking.trackers[spec.name] = spec.start(run)
        except Exception as exc:
            _warn(spec.name, exc)
    token = _CURRENT.set(tracking)
    try:
        yield tracking
    finally:
        _CURRENT.reset(token)


def epoch_ended(metrics: dict[str, float]) -> None:
    """Tell the run's trackers (if any) that an epoch ended."""
    tracking = _CURRENT.get()
    if tracking is not None and tracking.trackers:
        step = int(metrics.get("epoch", 0))
        tracking.call("epoch", {k: v for k, v in metrics.items() if k != "epoch"}, step, tracking.fold)


@contextlib.contextmanager
def fold(label: str) -> Iterator[None]:
    """The epochs inside belong to a fold (``repeat1-fold2``; nested folds join with ``/``, as in
    ``repeat1-fold2/operating_point/repeat1-fold1`` for a fold's threshold heads)."""
    tracking = _CURRENT.get()
    previous = tracking.fold if tracking is not None else None
    if tracking is not None:
        tracking.fold = f"{previous}/{label}" if previous else label
    try:
        yield
    finally:
        if tracking is not None:
            tracking.fold = previous

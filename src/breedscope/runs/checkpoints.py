"""A run's ``checkpoints/`` folder: the training state that survives a kill, and the model files.

The state names the model file saved with it; a resumed run loads that file and later deletes
it. A run directory may come from anyone, so the state is read as input: its types checked, its
phase known, the file it names one breedscope writes, and no file here reached through a link.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import TypeAdapter

from breedscope.core.atomic import write_json
from breedscope.core.errors import DataError

STATE = "state.json"
BEST = "best.weights.npz"  # the head's weights at the best validation loss
AFTER_HEAD = "after_head.keras"  # the model when the head phase ended (fine-tuning starts here)
LEGACY_LAST = "last.keras"  # the one model file runs before 0.2 kept
PHASES = ("head", "fine_tune", "done")
# The model files a trainer saves; nothing else is loaded or deleted.
CHECKPOINT_NAME = re.compile(r"epoch-\d{4,}-(head|fine_tune)\.keras|last\.keras")


def epoch_checkpoint(next_epoch: int, phase: str) -> str:
    """The file name of the model saved when ``next_epoch`` epochs are done in ``phase``."""
    return f"epoch-{next_epoch:04d}-{phase}.keras"


@dataclass
class TrainState:
    """What survives a killed run: the phase, where it was, how it was doing, its history."""

    phase: str = "head"  # "head", then "fine_tune" if asked, then "done"
    next_epoch: int = 0
    head_epochs: int = 0  # epochs the head phase ran; fine-tuning epochs are numbered after them
    best_val_loss: float | None = None
    best_epoch: int | None = None
    epochs_without_improvement: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    checkpoint: str | None = None  # the model file saved with exactly this state

    def problem(self) -> str | None:
        """Why this state cannot be resumed (``None``: it can)."""
        if self.phase not in PHASES:
            return f"its phase '{self.phase}' is none of {', '.join(PHASES)}"
        if self.checkpoint is not None and not CHECKPOINT_NAME.fullmatch(self.checkpoint):
            return f"it names '{self.checkpoint}', which is no checkpoint breedscope writes"
        return None


class Checkpoints:
    """The files of ``checkpoints/``, each read, replaced and deleted only as a file of it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _restore_advice(self, first: str = "r") -> str:
        return (
            f"{first}estore the run directory from its owner, or delete "
            f"{self.folder} to train the run again from its first epoch."
        )

    def state(self) -> TrainState:
        """The saved state (a fresh one when none is saved), refused in one sentence when it is
        not what breedscope writes. A resumed run calls this before anything in the run changes."""
        file = self.folder / STATE
        if not file.is_file():
            return TrainState()
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
            TypeAdapter(TrainState).validate_python(data)  # types checked; the values kept as written
            state: TrainState | None = TrainState(**data)  # (pydantic would make an epoch's 1 a 1.0)
        except (ValueError, TypeError):  # JSON, UTF-8 and pydantic's validation errors
            state = None
        problem = state.problem() if state is not None else "it is not the JSON breedscope writes"
        if state is None or problem is not None:
            raise DataError(f"{file} cannot be used: {problem}. {self._restore_advice('R')}")
        return state

    def save_state(self, state: TrainState) -> None:
        write_json(self.folder / STATE, state.__dict__)

    def file(self, name: str) -> Path:
        """A checkpoint file, never reached through a link a run directory from elsewhere holds."""
        path = self.folder / name
        if path.is_symlink():
            raise DataError(f"{path} is a link, not a checkpoint breedscope wrote; {self._restore_advice()}")
        return path

    def saved_with(self, state: TrainState) -> Path | None:
        """The model saved together with ``state`` (``None`` before the first epoch)."""
        path = self.file(state.checkpoint or LEGACY_LAST)
        return path if path.is_file() else None

    @property
    def best(self) -> Path:
        return self.file(BEST)

    @property
    def after_head(self) -> Path:
        return self.file(AFTER_HEAD)

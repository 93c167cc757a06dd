"""The run directory: every file a run writes is named here, and read or written through here.

One object owns the layout (as Ultralytics' trainer owns ``save_dir``): the pipeline, the
reports, ``compare``, prediction, export and the Python API all go through :class:`RunDir`, so
a file name is spelled once and a missing file is one sentence, not a ``FileNotFoundError``.
"""

from __future__ import annotations

import csv
import errno
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from breedscope.config import settings as config_module
from breedscope.config.settings import RunConfig
from breedscope.core import locks, paths
from breedscope.core.atomic import atomic_path, write_json, write_text
from breedscope.core.errors import BreedscopeError, ConfigError, DataError
from breedscope.data import manifest as manifest_module
from breedscope.data.croissant import CROISSANT, croissant
from breedscope.evaluation.metrics import Evaluation
from breedscope.runs.checkpoints import Checkpoints

CONFIG = "config.yaml"
MANIFEST = "manifest.json"  # the manifest's header, with the SHA-256 of its rows
MANIFEST_ROWS = "manifest.csv"  # one row per image: path, label, split, group, hashes
ENVIRONMENT = "environment.json"
STATUS = "status.json"
EVALUATION = "evaluation.json"
HISTORY = "history.csv"
PREDICTIONS = "predictions.csv"
MODEL = "model.keras"
FIGURES = "figures"
# The figures, relative to the run directory (reports link to them so).
CURVES_FIGURE = "figures/training_curves.png"
CONFUSION_FIGURE = "figures/confusion_matrix.png"
RELIABILITY_FIGURE = "figures/reliability.png"
ROC_FIGURE = "figures/roc.png"
OPERATING_POINT_FIGURE = "figures/operating_point.png"
AUGMENTED_FIGURE = "figures/augmented_samples.png"
ERRORS_FIGURE = "figures/confident_errors.png"
GRADCAM_FIGURE = "figures/gradcam.png"
GRADCAM_NOTE = "figures/gradcam.txt"  # why there is no Grad-CAM figure, when there is none
CHECKPOINTS = "checkpoints"  # the training state and its model files (see runs.checkpoints)
TENSORBOARD = "tensorboard"  # per-epoch scalars, as Keras' TensorBoard callback writes them
FOLDS = "folds"  # cross-validation: one run-like folder per repeat and fold
OPERATING_POINT = "operating_point"  # --operating-point without validation: its out-of-fold heads
FOLDS_TABLE = "folds.csv"  # cross-validation: which fold tests each image, per repeat
PROBABILITIES = "probabilities.npy"  # a fold's test probabilities, kept for a resumed run
EXPORT = "export"
LOCK = ".lock"  # held by the one process writing the run directory


def check_runs_dir(runs_dir: Path) -> None:
    """Refuse a runs folder that is a file (or lies below one), or that lies inside the dataset
    store, before any work is done."""
    paths.check_outside_datasets(runs_dir, "runs_dir:")
    if (blocking := paths.file_in_the_way(runs_dir)) is not None:
        raise ConfigError(
            f"runs_dir: {blocking} is a file, so run directories cannot go in {runs_dir}; "
            "pass a folder with --runs-dir."
        )


def write_predictions(path: Path, rows: list, classes: list[str], probabilities: np.ndarray) -> None:
    """``predictions.csv``: each image's path, true label, predicted class and every probability."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["path", "label", "predicted", *[f"p_{c}" for c in classes]])
        for row, p in zip(rows, probabilities, strict=True):
            writer.writerow([row.path, row.label, classes[int(p.argmax())], *[f"{v:.6f}" for v in p]])


def write_manifest(folder: Path, manifest: manifest_module.Manifest) -> Path:
    """A manifest's files in ``folder`` (a run directory, or a folder ``breedscope split``
    writes): the rows, the header and the same split as Croissant JSON-LD; returns the rows' file."""
    digest = manifest.write(folder / MANIFEST_ROWS, folder / MANIFEST)
    write_json(folder / CROISSANT, croissant(manifest, digest))
    return folder / MANIFEST_ROWS


def read_manifest(folder: Path) -> manifest_module.Manifest:
    """The manifest :func:`write_manifest` wrote in ``folder``, checked as input."""
    return manifest_module.read(folder / MANIFEST_ROWS, folder / MANIFEST)


def damaged(file: Path, problem: str) -> DataError:
    """The sentence for a file of a run directory that is not what breedscope wrote."""
    return DataError(
        f"{file} is damaged or was edited by hand ({problem}); restore it from the run's owner, or "
        "train the run again."
    )


def read_json(file: Path) -> dict[str, Any]:
    """A JSON object breedscope wrote into a run directory, or one sentence on why it is not one."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise damaged(file, f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise damaged(file, f"it holds a {type(data).__name__}, not an object")
    return data


class RunDir:
    """A run directory on disk: ``RUNS_DIR/DATASET/NAME``."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @classmethod
    def create(cls, runs_dir: Path, dataset: str, name: str) -> RunDir:
        """Make ``runs_dir/dataset/name``, or ``name-2``, ``name-3``... if taken (an atomic mkdir)."""
        parent = runs_dir / dataset
        check_runs_dir(parent)
        parent.mkdir(parents=True, exist_ok=True)
        candidate, number = parent / name, 1
        while True:
            try:
                candidate.mkdir()
                return cls(candidate)
            except FileExistsError:
                number += 1
                candidate = parent / f"{name}-{number}"

    # --- what a run is made from -----------------------------------------------------------

    def require_folder(self) -> None:
        """Refuse a path that is not a folder, in the one sentence every command on a run says."""
        if not self.path.is_dir():
            raise BreedscopeError(
                f"{self.path} is not a folder; pass a run directory (RUNS_DIR/DATASET/NAME)."
            )

    def inside(self, name: str) -> Path:
        """``name`` in the run directory, refused when it leads outside it (a link, say): a run
        directory may come from someone else, and breedscope reads, writes and deletes only
        inside it."""
        path = self.path / name
        root = self.path.resolve()
        if root not in path.resolve().parents:
            raise DataError(
                f"{path} leads outside its run directory (to {path.resolve()}); breedscope reads and "
                "writes only inside a run directory: replace the link with the file itself."
            )
        return path

    def require_run(self) -> None:
        """Refuse a folder breedscope never wrote as a run, in the sentence every command says."""
        self.require_folder()
        if not (self.path / CONFIG).is_file() and not (self.path / STATUS).is_file():
            # Every run writes both before any work, so a folder with neither was never a run.
            raise BreedscopeError(
                f"{self.path} is not a breedscope run directory (it has no {CONFIG}); pass a folder "
                "that `breedscope run` wrote (RUNS_DIR/DATASET/NAME)."
            )

    def _required(self, name: str, *, made_at_the_end: bool = False) -> Path:
        """``name`` in the run directory, or one sentence on why it is not there."""
        file = self.path / name
        if file.is_file():
            return self.inside(name)
        self.require_run()
        if not made_at_the_end:
            raise BreedscopeError(f"{self.path} has no {name}; pass a run directory that breedscope wrote.")
        status = self.status()
        state = status["state"]
        if state == "succeeded":
            raise BreedscopeError(
                f"{self.path} has no {name}, though the run finished; it was deleted or moved."
            )
        if state == "failed":  # resuming helps only once the cause is gone: say what it was
            error = str(status.get("error") or "no reason recorded").rstrip(".")
            raise BreedscopeError(
                f"{self.path} has no {name}; the run failed ({error}). Once that is fixed outside the "
                f"run (disk space, the dataset), continue it with: breedscope run --resume {self.path}; "
                "a problem in its settings needs a new run instead."
            )
        raise BreedscopeError(
            f"{self.path} has no {name}; the run did not finish (status: {state}). "
            f"Continue it with: breedscope run --resume {self.path}"
        )

    def config(self) -> RunConfig:
        file = self._required(CONFIG)
        return config_module.build([config_module.read_file(file)])

    def config_data(self) -> dict[str, Any]:
        """The stored settings as written (reports show them so)."""
        return config_module.read_file(self._required(CONFIG))

    def write_config(self, config: RunConfig) -> None:
        write_text(self.path / CONFIG, config_module.to_yaml(config))

    def manifest(self) -> manifest_module.Manifest:
        return read_manifest(self.path)

    def write_manifest(self, manifest: manifest_module.Manifest) -> None:
        write_manifest(self.path, manifest)

    def manifest_header(self) -> dict[str, Any]:
        return read_json(self._required(MANIFEST))

    def environment(self) -> dict[str, Any]:
        return read_json(self._required(ENVIRONMENT))

    def write_environment(self, environment: dict[str, Any]) -> None:
        write_json(self.path / ENVIRONMENT, environment)

    # --- what a run produces ---------------------------------------------------------------

    def evaluation(self) -> Evaluation:
        file = self._required(EVALUATION, made_at_the_end=True)
        try:
            return Evaluation.from_json(read_json(file))
        except (KeyError, TypeError, ValueError) as exc:
            raise damaged(file, f"it lacks what an evaluation holds: {exc}") from exc

    def write_evaluation(self, evaluation: Evaluation) -> None:
        write_json(self.path / EVALUATION, evaluation.to_json())

    def history(self) -> list[dict[str, float]]:
        """One record per epoch (``epoch``, ``loss``, ``accuracy``, ``val_loss``...); empty before
        the first epoch."""
        file = self.path / HISTORY
        if not file.is_file():
            return []
        with open(file, newline="", encoding="utf-8") as handle:
            return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]

    def write_history(self, history: list[dict[str, float]]) -> None:
        if not history:
            return
        columns = ["epoch", *sorted(key for key in history[0] if key != "epoch")]
        with atomic_path(self.path / HISTORY) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(history)

    @property
    def predictions_file(self) -> Path:
        return self.path / PREDICTIONS

    @property
    def model_file(self) -> Path:
        if not (self.path / MODEL).is_file() and (self.path / FOLDS).is_dir():
            raise BreedscopeError(
                f"{self.path} is a cross-validation run, which keeps one model per fold and none to use; "
                "run without --cv to train the model to predict with or export."
            )
        return self._required(MODEL, made_at_the_end=True)

    @property
    def figures(self) -> Path:
        return self.path / FIGURES

    def checkpoints(self) -> Checkpoints:
        """The ``checkpoints/`` folder, refused when it leads outside the run (not made here)."""
        return Checkpoints(self.inside(CHECKPOINTS))

    @property
    def tensorboard(self) -> Path:
        return self.path / TENSORBOARD

    # --- cross-validation ------------------------------------------------------------------

    @property
    def folds_table(self) -> Path:
        return self.path / FOLDS_TABLE

    @property
    def operating_point_predictions(self) -> Path:
        """The predictions an operating point's threshold was chosen on (validation or out-of-fold)."""
        return self.path / OPERATING_POINT / PREDICTIONS

    def operating_point_folds(self) -> RunDir:
        """Where an operating point's out-of-fold heads train (their folds and folds.csv)."""
        return RunDir(self.path / OPERATING_POINT)

    def fold(self, repeat: int, fold: int) -> RunDir:
        """The folder of one fold (both counted from 1): a run directory of its own."""
        return RunDir(self.path / FOLDS / f"repeat{repeat}-fold{fold}")

    def probabilities(self) -> np.ndarray | None:
        """A fold's stored test probabilities (``None`` until the fold has finished)."""
        file = self.path / PROBABILITIES
        return np.load(self.inside(PROBABILITIES)) if file.is_file() else None

    def write_probabilities(self, probabilities: np.ndarray) -> None:
        with atomic_path(self.path / PROBABILITIES) as tmp, open(tmp, "wb") as handle:
            np.save(handle, probabilities)

    def finished_evaluation(self) -> Evaluation | None:
        """The evaluation, if one was written (a finished fold); ``None`` otherwise."""
        return self.evaluation() if (self.path / EVALUATION).is_file() else None

    @property
    def export_dir(self) -> Path:
        return self.path / EXPORT

    def report(self, fmt: str = "pdf") -> Path:
        """The report file of a reporter (``markdown`` → ``report.md``, ``pdf`` → ``report.pdf``)."""
        suffix = {"markdown": "md"}.get(fmt, fmt)
        file = self.path / f"report.{suffix}"
        if not file.is_file():
            raise BreedscopeError(
                f"{self.path} has no report.{suffix}; render it with `breedscope report {self.path} "
                f"--format {fmt}`."
            )
        return file

    # --- state -----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """What ``status.json`` says; ``unknown`` when it is missing or unreadable (it only
        informs, and the next run or resume writes it anew)."""
        file = self.path / STATUS
        try:
            status = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {"state": "unknown"}
        return (
            status
            if isinstance(status, dict) and isinstance(status.get("state"), str)
            else {"state": "unknown"}
        )

    def set_status(self, state: str, **details: object) -> None:
        """``running`` until the very end: a run directory never claims a success it did not have.

        On a full disk the atomic write (a new file, then a rename) has no room, so the status is
        rewritten in place: truncating the old file frees the block the new text then takes. A run
        that failed for want of space must not go on saying ``running``.
        """
        status = {"state": state, "updated": datetime.now(UTC).isoformat(timespec="seconds"), **details}
        try:
            write_json(self.path / STATUS, status)
        except OSError as exc:
            if exc.errno != errno.ENOSPC or not (self.path / STATUS).is_file():
                raise
            (self.path / STATUS).write_text(json.dumps(status, sort_keys=True) + "\n", encoding="utf-8")

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the run directory's lock: one process at a time writes it."""
        busy = (
            f"{self.path} is being written by another breedscope process; wait for it to finish, "
            "or start a new run instead of resuming this one."
        )
        with locks.exclusive(self.path / LOCK, busy):
            yield

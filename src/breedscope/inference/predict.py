"""Using a trained model on new images: the files named (folders, globs), and their predictions."""

from __future__ import annotations

import glob
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from breedscope.core import quiet
from breedscope.core.errors import ConfigError
from breedscope.data.images import UnreadableImage, load_rgb
from breedscope.data.spec import is_junk
from breedscope.features.runtime import Forward
from breedscope.inference.runtime import check_runtime, classifier_forward
from breedscope.model.classifier import load_model
from breedscope.runs.rundir import RunDir

if TYPE_CHECKING:
    import keras

    from breedscope.evaluation.operating_point import OperatingPoint


@dataclass
class TrainedRun:
    """A finished run's classes and input size, and its model, loaded when first used: a refusal,
    a folder with no image in it or a copy of the model file answers without starting
    TensorFlow (several seconds)."""

    run_dir: Path
    model_file: Path
    classes: list[str]
    image_size: int
    operating_point: OperatingPoint | None = None  # with one, each image is also decided at its threshold
    _forwards: dict[str, Forward] = field(default_factory=dict, repr=False, compare=False)

    @cached_property
    def model(self) -> keras.Model:
        quiet.load_tensorflow()
        return load_model(self.model_file, len(self.classes))

    def forward(self, runtime: str = "auto") -> Forward:
        """Images in, probabilities out, through ``runtime`` (see :mod:`.runtime`); Keras and
        TensorFlow are loaded only when that needs them."""
        if runtime not in self._forwards:
            self._forwards[runtime] = classifier_forward(
                self.model_file, self.image_size, runtime, lambda: self.model
            )
        return self._forwards[runtime]


def load_run(run_dir: Path) -> TrainedRun:
    """A finished run's model file, classes and input size, or a sentence saying what is missing."""
    directory = RunDir(run_dir)
    model_file = directory.model_file
    image_size = directory.config().model.image_size
    classes = directory.manifest().classes
    point = directory.evaluation().operating_point
    return TrainedRun(run_dir, model_file, classes, image_size, point)


@dataclass(frozen=True)
class Prediction:
    path: str
    top: list[tuple[str, float]]
    error: str = ""
    decision: str = ""  # at the run's operating point: its positive class, or "not" it


def image_paths(arguments: str | Path | Iterable[str | Path]) -> list[Path]:
    """The files the arguments name, in order: a file as it is, a folder's files (recursively,
    sorted, without system litter), a glob pattern's matches (``**`` for any depth). A name that
    is neither stays in the list, so that it is reported as not found. One name may be given
    alone (a string is one name, not its characters)."""
    found: list[Path] = []
    for argument in [arguments] if isinstance(arguments, str | Path) else arguments:
        path = Path(argument).expanduser()
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and not is_junk(p.relative_to(path)))
        elif not path.exists() and glob.has_magic(str(argument)):
            found += [Path(m) for m in sorted(glob.glob(str(path), recursive=True)) if Path(m).is_file()]
        else:
            found.append(path)
    return found


def iter_predictions(
    run: TrainedRun, paths: list[Path], top: int = 3, batch_size: int = 32, runtime: str = "auto"
) -> Iterator[Prediction]:
    """Top classes for each image, in order, a batch at a time (a folder of 100,000 images is never
    held in memory); an unreadable or missing file gets an error, the rest still run. ``top``
    is at least 1 and ``runtime`` one of ``auto``, ``litert``, ``keras`` (checked here, before
    any file is read); more than the run's classes shows them all."""
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ConfigError(f"top (how many classes to show per image) must be 1 or more, not {top!r}.")
    check_runtime(runtime)
    return _predictions(run, paths, top, batch_size, runtime)


@dataclass(frozen=True)
class _Batch:
    paths: list[Path]
    results: list[Prediction | None]  # None: read, waiting for its probabilities
    pixels: np.ndarray | None


def _read(paths: list[Path], image_size: int) -> _Batch:
    results: list[Prediction | None] = []
    pixels: list[np.ndarray] = []
    for path in paths:
        if path.exists() and not path.is_file():  # a pipe would be waited on for ever
            results.append(Prediction(str(path), [], "not a regular file (a pipe, socket or device)"))
            continue
        try:
            pixels.append(load_rgb(path, image_size))
            results.append(None)
        except FileNotFoundError:
            results.append(Prediction(str(path), [], "file not found"))
        except UnreadableImage as exc:
            results.append(Prediction(str(path), [], exc.reason))
        except OSError as exc:
            results.append(Prediction(str(path), [], f"cannot read ({exc.strerror or exc})"))
    return _Batch(paths, results, np.stack(pixels).astype(np.float32) if pixels else None)


def _predictions(
    run: TrainedRun, paths: list[Path], top: int, batch_size: int, runtime: str
) -> Iterator[Prediction]:
    chunks = [paths[start : start + batch_size] for start in range(0, len(paths), batch_size)]
    if not chunks:
        return
    # The next batch is decoded (Pillow releases the GIL) while this one is classified.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(_read, chunks[0], run.image_size)
        try:
            for position in range(len(chunks)):
                batch = pending.result()
                if position + 1 < len(chunks):
                    pending = pool.submit(_read, chunks[position + 1], run.image_size)
                yield from _predicted(run, batch, runtime, top)
        finally:
            pending.cancel()  # a caller that stops early leaves nothing decoding


def _predicted(run: TrainedRun, batch: _Batch, runtime: str, top: int) -> Iterator[Prediction]:
    # The model is loaded (or its conversion read) only for a batch with an image in it: a folder
    # of files that are not images is answered without starting TensorFlow.
    probabilities = iter(run.forward(runtime)(batch.pixels) if batch.pixels is not None else [])
    for path, result in zip(batch.paths, batch.results, strict=True):
        if result is None:
            p = next(probabilities)
            order = np.argsort(-p)[:top]
            ranked = [(run.classes[i], float(p[i])) for i in order]
            result = Prediction(str(path), ranked, "", _decision(run, p))
        yield result


def _decision(run: TrainedRun, probabilities: np.ndarray) -> str:
    """The call at the run's operating point (empty without one)."""
    point = run.operating_point
    if point is None:
        return ""
    called = probabilities[run.classes.index(point.positive)] >= point.threshold
    return point.positive if called else f"not {point.positive}"


def predict(
    run: TrainedRun, paths: list[Path], top: int = 3, batch_size: int = 32, runtime: str = "auto"
) -> list[Prediction]:
    """:func:`iter_predictions`, as a list."""
    return list(iter_predictions(run, paths, top, batch_size, runtime))

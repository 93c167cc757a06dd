"""External validation: a trained model on someone else's images (``breedscope evaluate RUN_DIR
--dataset OTHER``), the test medical users need for domain shift.

Every kept image of the other fetched dataset whose class the model knows (directly, or through
a class mapping such as ``normal=NORMAL``) is predicted; the evaluation is the run's own, with
intervals that resample the other dataset's groups (patients, duplicates). Everything lands in
``RUN_DIR/external/OTHER/``: ``evaluation.json``, ``predictions.csv`` and the report.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from breedscope.core.atomic import write_json
from breedscope.core.errors import BreedscopeError, ConfigError
from breedscope.data.images import load_rgb
from breedscope.data.manifest import Row
from breedscope.data.store import StoredDataset
from breedscope.evaluation.metrics import Evaluation, evaluate_rows
from breedscope.inference.predict import TrainedRun
from breedscope.report.build import figures_sections, metrics_section
from breedscope.report.document import Document, Paragraph, Section, Table
from breedscope.report.reporter import ReporterSpec
from breedscope.runs.rundir import EVALUATION, PREDICTIONS, RunDir, write_predictions

FOLDER = "external"


@dataclass(frozen=True)
class ExternalEvaluation:
    directory: Path
    dataset: str
    evaluation: Evaluation
    left_out: dict[str, int]  # the other dataset's classes the model does not know, and their images
    reports: list[Path]


def parse_mapping(text: str | None) -> dict[str, str]:
    """``"normal=NORMAL,pneumonia=PNEUMONIA"`` → the other dataset's class → the model's class."""
    if not text:
        return {}
    mapping = {}
    for pair in text.split(","):
        other, sep, ours = (part.strip() for part in pair.partition("="))
        if not sep or not other or not ours:
            raise ConfigError(
                f"--map takes OTHER=OURS pairs separated by commas, like normal=NORMAL, not '{pair}'."
            )
        mapping[other] = ours
    return mapping


def _rows(run: TrainedRun, other: StoredDataset, mapping: dict[str, str]) -> tuple[list[Row], dict[str, int]]:
    unknown_targets = sorted(set(mapping.values()) - set(run.classes))
    if unknown_targets:
        raise ConfigError(
            f"--map names {', '.join(unknown_targets)}, which the model does not know; its classes are "
            f"{', '.join(run.classes)}."
        )
    rows, left_out = [], Counter()
    for record in other.records():
        label = mapping.get(record.label, record.label)
        if label not in run.classes:
            left_out[record.label] += 1
            continue
        rows.append(Row.of(record, "test", label))
    if not rows:
        raise ConfigError(
            f"None of the classes of '{other.name}' ({', '.join(sorted(left_out))}) is one the model knows "
            f"({', '.join(run.classes)}); map them with --map OTHER=OURS."
        )
    return rows, dict(sorted(left_out.items()))


def _probabilities(run: TrainedRun, root: Path, rows: list[Row], batch_size: int = 32) -> np.ndarray:
    from breedscope.core.progress import progress_bar

    chunks = []
    model = run.model  # loaded before the bar starts, so that the bar measures predicting
    with progress_bar("Predicting", total=len(rows)) as advance:
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            pixels = np.stack([load_rgb(root / r.path, run.image_size) for r in batch]).astype(np.float32)
            chunks.append(np.asarray(model.predict_on_batch(pixels)))
            advance(len(batch))
    return np.concatenate(chunks)


def evaluate_on(
    run: TrainedRun,
    other: StoredDataset,
    mapping: dict[str, str],
    reporters: list[ReporterSpec],
    seed: int = 42,
) -> ExternalEvaluation:
    """Predict every usable image of ``other`` with ``run``'s model and evaluate, as for a test split."""
    rows, left_out = _rows(run, other, mapping)
    probabilities = _probabilities(run, other.image_root, rows)
    evaluation = evaluate_rows(rows, probabilities, run.classes, seed)
    directory = RunDir(run.run_dir).path / FOLDER / other.name
    directory.mkdir(parents=True, exist_ok=True)
    evaluation = evaluation.with_extra(external={"dataset": other.name, "map": mapping, "left_out": left_out})
    write_json(directory / EVALUATION, evaluation.to_json())
    write_predictions(directory / PREDICTIONS, rows, run.classes, probabilities)
    document = _document(run, other, directory, evaluation, mapping, left_out)
    reports = [reporter.render(document, directory) for reporter in reporters]
    return ExternalEvaluation(directory, other.name, evaluation, left_out, reports)


def _document(
    run: TrainedRun, other: StoredDataset, directory: Path, data: Evaluation, mapping: dict, left_out: dict
) -> Document:
    origin = other.info.get("source", {})
    where = origin.get("handle") or origin.get("location") or other.name
    low, high = data.interval("accuracy")
    text = (
        f"The model of run {run.run_dir} (trained on another dataset) on **{other.name}** ({where}): "
        f"accuracy **{data.accuracy:.3f}** (95% CI {low:.3f} – {high:.3f}) on {data.n_test} images. "
        "None of these images was used in training or model selection, so the figures measure how the "
        "model carries over to data from elsewhere."
    )
    blocks: list = [Paragraph(text)]
    if mapping:
        blocks.append(
            Table(["their class", "the model's class"], [[k, v] for k, v in mapping.items()], "Class map")
        )
    if left_out:
        listed = ", ".join(f"{label} ({count})" for label, count in left_out.items())
        blocks.append(Paragraph(f"Left out, as classes the model does not know: {listed}."))
    blocks.append(_beside_the_run(RunDir(run.run_dir).evaluation(), data, other.name))
    sections = [
        Section("External validation", blocks),
        metrics_section(data, f"Metrics on the external dataset {other.name}"),
        *figures_sections(directory, data, []),
    ]
    return Document(
        f"breedscope external validation: {other.name}", f"model of {run.run_dir}", directory, sections
    )


def _beside_the_run(internal: Evaluation, external: Evaluation, name: str) -> Table:
    """The run's own test figures beside the external ones, each with its interval."""

    def cell(evaluation: Evaluation, value: float | None, interval: str | None) -> str:
        if value is None:
            return "n/a"
        bounds = evaluation.intervals.get(interval) if interval else None
        return f"{value:.3f}" + (f" ({bounds[0]:.3f} – {bounds[1]:.3f})" if bounds else "")

    rows = []
    for label, get, interval in (
        ("accuracy", lambda e: e.accuracy, "accuracy"),
        ("macro F1", lambda e: e.macro_f1, "macro_f1"),
        ("balanced accuracy", lambda e: e.balanced_accuracy, None),
        ("ROC-AUC", lambda e: e.roc_auc, None),
    ):
        rows.append([label, cell(internal, get(internal), interval), cell(external, get(external), interval)])
    rows.append(["images", str(internal.n_test), str(external.n_test)])
    return Table(
        ["metric", "internal: the run's test split (95% CI)", f"external: {name} (95% CI)"],
        rows,
        "The same model on its own held-out test images and on the external dataset.",
    )


def require_dataset(name: str) -> StoredDataset:
    from breedscope.data import store

    dataset = store.load(name)
    if dataset is None:
        raise BreedscopeError(
            f"'{name}' is not fetched; fetch it first (breedscope fetch ... --name {name})."
        )
    return dataset

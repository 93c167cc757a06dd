"""Build the report :class:`Document` of a run from what the run stored on disk.

Nothing is computed twice: numbers come from ``evaluation.json``, curves from ``history.csv``,
counts from ``manifest.json``. Figures are drawn into ``figures/`` beside them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from breedscope.config.presets import Preset
from breedscope.evaluation.metrics import Evaluation, few_images_sentence
from breedscope.report import figures
from breedscope.report.document import Document, Figure, Paragraph, Section, Table
from breedscope.runs import rundir
from breedscope.runs.rundir import RunDir

# Fewer test images than this in a class, and its per-class figures are said to be not meaningful.


SORTED_CLASSES = 30  # a per-class table longer than this is sorted, worst F1 first


def _pct(value: float) -> str:
    return f"{value:.3f}"


def _interval(evaluation: Evaluation, key: str) -> str:
    low, high = evaluation.interval(key)
    return f"{low:.3f} – {high:.3f}"


def summary_section(config: dict, manifest: dict, evaluation: Evaluation) -> Section:
    counts = manifest["counts"]
    classes = manifest["classes"]
    rows = [[c, *[str(counts[s].get(c, 0)) for s in ("train", "val", "test")]] for c in classes]
    rows.append(["total", *[str(sum(counts[s].values())) for s in ("train", "val", "test")]])
    balance = manifest["balance"]
    policy = balance["policy"] + (f" ({balance['cap']} per class)" if balance["policy"] == "cap" else "")
    split = manifest["split"]
    grouping = (
        "grouped (patients and duplicates kept on one side)" if split.get("grouped", True) else "per image"
    )
    dataset = manifest["dataset"]
    origin = f", Kaggle {dataset['handle']}" if dataset.get("handle") else ""
    cv = evaluation.cv
    protocol = (
        f"Grouped, stratified {cv.folds}-fold cross-validation ({cv.repeats} repeat(s)), seed "
        f"{manifest['seed']}"
        if cv
        else f"Split train/val/test {split['train']:g}/{split['val']:g}/{split['test']:g}, {grouping}, "
        f"seed {manifest['seed']}"
    )
    text = (
        f"Dataset **{dataset['name']}** ({len(classes)} classes{origin}), preset "
        f"**{config.get('preset') or 'none'}**. {protocol}. "
        f"Balance policy: {policy}. Test accuracy **{_pct(evaluation.accuracy)}** "
        f"(95% CI {_interval(evaluation, 'accuracy')}) on {evaluation.n_test} "
        + ("out-of-fold predictions." if cv else "test images.")
    )
    splits = ["test"] if cv else ["train", "val", "test"]  # CV: every image is in the pool
    if len(classes) > SORTED_CLASSES:  # a row per class would run to pages: the spread instead
        table = _spread_table(counts, classes, splits)
    elif cv:
        rows = [[c, str(counts["test"].get(c, 0))] for c in classes] + [
            ["total", str(sum(counts["test"].values()))]
        ]
        table = Table(["class", "images"], rows, "Images (each tested once per repeat)")
    else:
        table = Table(["class", "train", "val", "test"], rows, "Images per split")
    blocks: list = [Paragraph(text), table]
    blocks += [Paragraph(f"Note: {w}.") for w in manifest.get("warnings", [])]
    excluded = manifest.get("excluded")
    if excluded:
        blocks.append(
            Paragraph(
                f"Excluded: {excluded['images']} image(s) listed in {excluded['file']} (SHA-256 "
                f"{excluded['sha256'][:12]}) were left out before the split."
            )
        )
    stopping = None if cv else early_stopping_note(config["train"].get("patience"), manifest["counts"]["val"])
    if stopping:
        blocks.append(Paragraph(f"Note: {stopping}"))
    return Section("Summary", blocks)


def _spread_table(counts: dict, classes: list[str], splits: list[str]) -> Table:
    """Images per class and split for many classes: the smallest, median and largest class, the
    total, and the classes with the fewest images named."""
    per_split = {s: np.array([counts[s].get(c, 0) for c in classes]) for s in splits}
    rows = [
        [what, *(str(int(how(per_split[s]))) for s in splits)]
        for what, how in (("smallest class", np.min), ("median class", np.median), ("largest class", np.max))
    ]
    rows.append(["total", *(str(int(per_split[s].sum())) for s in splits)])
    everywhere = sum(per_split.values())
    fewest = [classes[i] for i in np.argsort(everywhere, kind="stable")[:10]]
    return Table(
        ["images per class", *splits],
        rows,
        f"Images per class and split, over {len(classes)} classes; fewest images: {', '.join(fewest)}.",
    )


def early_stopping_note(patience: int | None, val_counts: dict[str, int]) -> str | None:
    """The sentence a run owes its reader when it names a patience it cannot use."""
    if patience is None or sum(val_counts.values()) > 0:
        return None
    return (
        f"train.patience is {patience}, but the split has no validation images, so early stopping "
        "is off: every epoch ran and the last epoch's model was tested."
    )


def configuration_section(
    config: dict, manifest: dict | None = None, environment: dict | None = None
) -> Section:
    """The settings, after what the run was made from: the dataset, its source (the Kaggle handle
    and version, or the archive's kind and SHA-256) and the command."""
    rows = []
    dataset = (manifest or {}).get("dataset", {})
    if dataset:
        rows.append(["dataset", str(dataset.get("name"))])
        if dataset.get("handle"):
            rows.append(["source", f"Kaggle {dataset['handle']}"])
        else:
            digest = dataset.get("source_sha256") or dataset.get("content_sha256")
            kind = dataset.get("source") or "local"
            rows.append(["source", f"{kind}, SHA-256 {digest}" if digest else kind])
    if (environment or {}).get("command"):
        rows.append(["command", environment["command"]])
    for section in ("model", "train", "augment", "split", "balance"):
        for key, value in config.get(section, {}).items():
            rows.append([f"{section}.{key}", json.dumps(value) if not isinstance(value, str) else value])
    return Section("Configuration", [Table(["setting", "value"], rows)])


def metrics_section(evaluation: Evaluation, title: str = "Metrics on the test split") -> Section:
    macro, weighted = evaluation.macro, evaluation.weighted
    overall = [
        ["accuracy", _pct(evaluation.accuracy), _interval(evaluation, "accuracy")],
        ["macro F1", _pct(macro.f1), _interval(evaluation, "macro_f1")],
        ["balanced accuracy", _pct(evaluation.balanced_accuracy), ""],
        ["macro precision / recall", f"{_pct(macro.precision)} / {_pct(macro.recall)}", ""],
        [
            "weighted precision / recall / F1",
            " / ".join(_pct(v) for v in (weighted.precision, weighted.recall, weighted.f1)),
            "",
        ],
        ["log loss", f"{evaluation.log_loss:.4f}", ""],
        ["expected calibration error", f"{evaluation.ece:.4f}", ""],
    ]
    if evaluation.roc_auc is not None:
        overall.append(
            [
                "ROC-AUC" + (" (one-vs-rest, macro)" if len(evaluation.classes) > 2 else ""),
                _pct(evaluation.roc_auc),
                "",
            ]
        )
    if evaluation.sensitivity is not None:
        overall += [
            [f"sensitivity ({evaluation.positive_class})", _pct(evaluation.sensitivity), ""],
            ["specificity", _pct(evaluation.specificity), ""],
        ]
    per_class = [
        [name, _pct(m.precision), _pct(m.recall), _pct(m.f1), evaluation.support_cell(name)]
        for name, m in evaluation.per_class.items()
    ]
    caption = "Per class (support: test images)"
    header = ["class", "precision", "recall", "F1", "support"]
    if len(per_class) > figures.LABELLED_CLASSES:  # the heat map numbers its classes in name order
        per_class = [[str(number), *row] for number, row in enumerate(per_class)]
        header = ["#", *header]
    if len(per_class) > SORTED_CLASSES:  # a long table is read for its worst classes first
        per_class.sort(key=lambda row: (float(row[-2]), row[-5]))
        caption += ", worst F1 first"
    method = evaluation.interval_method
    blocks: list = [
        Table(["metric", "value", "95% CI"], overall, f"Intervals: {method}."),
        Table(header, per_class, caption),
    ]
    few = evaluation.small_classes()
    if few:
        blocks.append(Paragraph(few_images_sentence(few)))
    if evaluation.absent_classes:
        absent = ", ".join(evaluation.absent_classes)
        blocks.append(
            Paragraph(
                f"No test image is of {absent}: macro figures and balanced accuracy average over the "
                f"{len(evaluation.classes) - len(evaluation.absent_classes)} classes present, and "
                "the absent classes' rows hold only how often the model predicted them (precision 0)."
            )
        )
    return Section(title, blocks)


def cross_validation_section(evaluation: Evaluation) -> Section | None:
    """Each fold's figures, their spread, and the pooled interval."""
    cv = evaluation.cv
    if cv is None:
        return None
    rows = [
        [str(f.repeat), str(f.fold), str(f.n_test), _pct(f.accuracy), _pct(f.macro_f1)] for f in cv.per_fold
    ]
    low, high = evaluation.interval("accuracy")
    text = (
        f"Grouped, stratified {cv.folds}-fold cross-validation"
        + (f", repeated {cv.repeats} times with other folds" if cv.repeats > 1 else "")
        + f": each of the {cv.images} images was tested once per repeat by a model that never saw it "
        "or its group. The figures above pool every out-of-fold prediction: accuracy "
        f"{_pct(evaluation.accuracy)} (95% CI {low:.3f} – {high:.3f}). Across folds the accuracy is "
        f"{_pct(cv.fold_accuracy_mean)} on average, with a standard deviation of "
        f"{_pct(cv.fold_accuracy_sd)}."
    )
    table = Table(["repeat", "fold", "test images", "accuracy", "macro F1"], rows, "Per fold")
    return Section("Cross-validation", [Paragraph(text), table])


def comparison_section(config: dict, evaluation: Evaluation, known: Mapping[str, Preset]) -> Section | None:
    name = config.get("preset")
    preset = known.get(name) if name else None
    if preset is None or preset.study is None:
        return None
    study = preset.study
    rows = []
    for key, theirs in study.reported.items():
        ours = evaluation.figure(key)
        ci = _interval(evaluation, key) if key in ("accuracy", "macro_f1") else ""
        rows.append(
            [
                key.replace("_", " ").replace("f1", "F1"),
                f"{theirs:.3f}",
                _pct(ours) if ours is not None else "n/a",
                ci,
            ]
        )
    few = evaluation.small_classes()
    for label, theirs in study.per_class_f1.items():
        ours = evaluation.per_class[label].f1 if label in evaluation.per_class else None
        shown = _pct(ours) if ours is not None else "not in this run"
        if label in few:
            shown += f" (on {few[label]} test image{'s' if few[label] != 1 else ''}: not meaningful)"
        rows.append([f"F1 {label}", f"{theirs:.2f}", shown, ""])
    blocks: list = [
        Paragraph(f"Study: {study.title}."),
        Table(["metric", "study", "this run", "this run, 95% CI"], rows),
    ]
    low, high = evaluation.interval("accuracy")
    reported = study.reported.get("accuracy")
    if reported is not None:
        inside = low <= reported <= high
        blocks.append(
            Paragraph(
                f"The study's accuracy of {reported:.3f} lies {'inside' if inside else 'outside'} this run's "
                f"95% interval ({low:.3f} – {high:.3f}) over {evaluation.n_test} test images."
            )
        )
    blocks += [Paragraph(sentence) for sentence in (*preset.differences, *study.notes)]
    return Section("Comparison with the study", blocks)


def figures_sections(run_dir: Path, evaluation: Evaluation, history: list[dict]) -> list[Section]:
    sections = []
    if history:
        figures.training_curves(history, run_dir / rundir.CURVES_FIGURE)
        sections.append(
            Section(
                "Training curves",
                [Figure(Path(rundir.CURVES_FIGURE), "Loss and accuracy per epoch.")],
            )
        )
    figures.confusion_matrix(evaluation, run_dir / rundir.CONFUSION_FIGURE)
    n = len(evaluation.classes)
    annotated = n <= figures.ANNOTATED_CLASSES
    confusion: list = [
        Figure(
            Path(rundir.CONFUSION_FIGURE),
            "Counts and share of each true class (rows)."
            if annotated
            else "Share of each true class (rows) predicted as each class, as a heat map.",
            0.8 if n > 4 else 0.6,
        )
    ]
    if not annotated:
        rows = [[t, p, str(c), f"{share:.0%}"] for t, p, c, share in evaluation.most_confused_pairs()]
        confusion.append(Table(["true", "predicted", "images", "share of true"], rows, "Most confused pairs"))
    sections.append(Section("Confusion matrix", confusion))
    figures.reliability(evaluation, run_dir / rundir.RELIABILITY_FIGURE)
    calibration = [
        Figure(Path(rundir.RELIABILITY_FIGURE), "Reliability diagram of the top-class confidence.", 0.55)
    ]
    if evaluation.roc_curve is not None:
        figures.roc(evaluation, run_dir / rundir.ROC_FIGURE)
        calibration.append(Figure(Path(rundir.ROC_FIGURE), "ROC curve.", 0.55))
    elif evaluation.roc_curves:
        figures.roc_one_vs_rest(evaluation, run_dir / rundir.ROC_FIGURE)
        calibration.append(Figure(Path(rundir.ROC_FIGURE), "One-vs-rest ROC curve per class (AUC).", 0.6))
    sections.append(Section("Calibration and ROC", calibration))
    return sections


def operating_point_section(run_dir: Path, evaluation: Evaluation) -> Section | None:
    """With --operating-point: the threshold, the test figures at it with intervals, the curve."""
    point = evaluation.operating_point
    if point is None:
        return None
    rows = [
        [label, point.estimate(name).percent()]
        for name, label in (
            ("sensitivity", f"sensitivity (of {point.test_positives} {point.positive})"),
            ("specificity", f"specificity (of {point.test_negatives} others)"),
            ("ppv", "positive predictive value"),
            ("npv", "negative predictive value"),
        )
    ]
    threshold = (
        f"Each fold's threshold (median {point.threshold:.4f}; "
        + ", ".join(f"{t:.4f}" for t in point.fold_thresholds)
        + ")"
        if point.fold_thresholds
        else f"The threshold {point.threshold:.4f}"
    )
    heads = "" if point.chosen_on == "validation" else "; a head per fold, trained on the other folds"
    note = (
        f"{threshold} on the probability of {point.positive} was chosen on {point.where()} "
        f"({point.chosen_images} images{heads}) for {point.target}; no image was tested by a "
        "threshold chosen on it. "
        "PPV and NPV hold at this test split's prevalence "
        f"({point.test_positives} of {point.test_positives + point.test_negatives})."
    )
    figures.operating_point(evaluation, run_dir / rundir.OPERATING_POINT_FIGURE)
    return Section(
        "Operating point",
        [
            Paragraph(point.sentence()),
            Table(["at the threshold, on the test split", "value (95% CI)"], rows),
            Paragraph(note),
            Figure(
                Path(rundir.OPERATING_POINT_FIGURE),
                "The test ROC curve and the chosen point, with its intervals.",
                0.55,
            ),
        ],
    )


def errors_section(run_dir: Path, evaluation: Evaluation) -> Section:
    rows = [[e.path, e.true, e.predicted, f"{e.confidence:.3f}"] for e in evaluation.most_confident_errors]
    if not rows:
        return Section("Most confident errors", [Paragraph("No test image was misclassified.")])
    blocks: list = [Table(["image", "true", "predicted", "confidence"], rows)]
    if (run_dir / rundir.ERRORS_FIGURE).is_file():
        blocks.append(
            Figure(Path(rundir.ERRORS_FIGURE), "The most confidently misclassified test images.", 0.9)
        )
    return Section("Most confident errors", blocks)


def pictures_sections(run_dir: Path, config: dict) -> list[Section]:
    """Augmented samples and Grad-CAM maps, drawn at the end of the run when it had the images."""
    augmented = (
        [
            Figure(
                Path(rundir.AUGMENTED_FIGURE),
                f"Training images and augmented views ({config['augment']['preset']}).",
                0.75,
            )
        ]
        if (run_dir / rundir.AUGMENTED_FIGURE).is_file()
        else [
            Paragraph(
                f"Augmentation preset '{config['augment']['preset']}': training images are not changed."
            )
        ]
    )
    sections = [Section("Augmented training samples", augmented)]
    if (run_dir / rundir.GRADCAM_NOTE).is_file():
        note = (run_dir / rundir.GRADCAM_NOTE).read_text(encoding="utf-8").strip()
        sections.append(Section("Class activation maps", [Paragraph(note)]))
    elif (run_dir / rundir.GRADCAM_FIGURE).is_file():
        sections.append(
            Section(
                "Class activation maps",
                [
                    Figure(
                        Path(rundir.GRADCAM_FIGURE),
                        "Grad-CAM on the backbone's last convolutional block, for the predicted class "
                        "(caption: true → predicted).",
                        0.9,
                    )
                ],
            )
        )
    return sections


def environment_section(environment: dict, manifest_sha: str) -> Section:
    gpus = ", ".join(environment.get("gpus") or []) or "none"
    rows = [
        ["seed", str(environment["seed"])],
        ["manifest sha256", manifest_sha],
        ["python", environment["python"]],
        ["platform", environment["platform"]],
        [
            "hardware",
            f"{environment['processor']}, {environment['cpu_count']} CPU cores, "
            f"{environment.get('memory_gb', '?')} GB memory, GPUs: {gpus}",
        ],
    ]
    rows += [[package, v] for package, v in environment["versions"].items()]
    return Section("Environment", [Table(["item", "value"], rows)])


def build_document(run_dir: Path, known_presets: Mapping[str, Preset]) -> Document:
    """The report of the finished run in ``run_dir``, from its stored files only; the study of
    its preset (among ``known_presets``) is set beside its figures."""
    directory = RunDir(run_dir.resolve())
    run_dir = directory.path
    config = directory.config_data()
    manifest = directory.manifest_header()
    evaluation = directory.evaluation()
    environment = directory.environment()
    history = directory.history()
    sections = [summary_section(config, manifest, evaluation)]
    comparison = comparison_section(config, evaluation, known_presets)
    if comparison:
        sections.append(comparison)
    sections += [
        metrics_section(evaluation),
        *([point] if (point := operating_point_section(run_dir, evaluation)) else []),
        *([cv] if (cv := cross_validation_section(evaluation)) else []),
        *figures_sections(run_dir, evaluation, history),
        errors_section(run_dir, evaluation),
        *pictures_sections(run_dir, config),
        configuration_section(config, manifest, environment),
        environment_section(environment, manifest["csv_sha256"]),
    ]
    title = f"breedscope report: {manifest['dataset']['name']}"
    subtitle = f"run {run_dir.parent.name}/{run_dir.name}, backbone {config['model']['backbone']}"
    return Document(title, subtitle, run_dir, sections)

"""One table across runs, from their stored evaluations (``breedscope compare``)."""

from __future__ import annotations

from pathlib import Path

from breedscope.report.document import Table
from breedscope.runs.rundir import RunDir

HEADER = [
    "run",
    "dataset",
    "preset",
    "protocol",
    "backbone",
    "manifest",
    "test images",
    "accuracy (95% CI)",
    "macro F1 (95% CI)",
    "balanced acc.",
    "log loss",
    "ECE",
]


def protocol(config: dict, manifest: dict | None = None) -> str:
    """How a run was tested: ``one split``, ``5-fold CV``, ``5-fold CV x 2``; ``, faithful`` when
    the study's own protocol was applied; ``, 30 excluded`` when ``--exclude`` left images out."""
    cv = config.get("cv") or {}
    if cv.get("folds"):
        text = f"{cv['folds']}-fold CV" + (f" x {cv['repeats']}" if cv.get("repeats", 1) > 1 else "")
    else:
        text = "one split"
    if config.get("faithful"):
        text += ", faithful"
    elif not config["split"].get("grouped", True):
        text += ", per image"
    excluded = (manifest or {}).get("excluded")
    if excluded:
        text += f", {excluded['images']} excluded"
    return text


def comparison_table(run_dirs: list[Path]) -> tuple[Table, list[str]]:
    """The table, and notes (for example when the runs were not tested on the same manifest)."""
    rows, manifests, points = [], set(), []
    for path in run_dirs:
        directory = RunDir(path)
        evaluation = directory.evaluation()
        config, manifest = directory.config_data(), directory.manifest_header()
        manifests.add(manifest["csv_sha256"])
        points.append(evaluation.operating_point)
        accuracy_ci = evaluation.interval("accuracy")
        f1_ci = evaluation.interval("macro_f1")
        rows.append(
            [
                f"{path.parent.name}/{path.name}",
                manifest["dataset"]["name"] or "",
                config.get("preset") or "",
                protocol(config, manifest),
                config["model"]["backbone"],
                manifest["csv_sha256"][:10],
                str(evaluation.n_test),
                f"{evaluation.accuracy:.3f} ({accuracy_ci[0]:.3f}–{accuracy_ci[1]:.3f})",
                f"{evaluation.macro_f1:.3f} ({f1_ci[0]:.3f}–{f1_ci[1]:.3f})",
                f"{evaluation.balanced_accuracy:.3f}",
                f"{evaluation.log_loss:.3f}",
                f"{evaluation.ece:.3f}",
            ]
        )
    header = list(HEADER)
    if any(points):  # a column only where some run was given an operating point
        header.append("sensitivity / specificity at the operating point")
        for row, point in zip(rows, points, strict=True):
            row.append(_at_point(point) if point else "")
    notes = []
    if len(manifests) > 1:
        notes.append(
            "The runs used different manifests, so their test images differ; for a like-for-like "
            "comparison, run with --manifest pointing at one run's directory."
        )
    return Table(header, rows), notes


def _at_point(point) -> str:
    sensitivity, specificity = point.sensitivity, point.specificity
    return (
        f"{sensitivity.value:.3f} ({sensitivity.low:.3f}–{sensitivity.high:.3f}) / "
        f"{specificity.value:.3f} ({specificity.low:.3f}–{specificity.high:.3f}) at {point.target}"
    )

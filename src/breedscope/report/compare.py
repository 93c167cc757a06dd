"""One table across runs, from their stored evaluations (``breedscope compare``)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from breedscope.errors import BreedscopeError
from breedscope.report.document import Table

HEADER = [
    "run",
    "dataset",
    "preset",
    "backbone",
    "manifest",
    "test images",
    "accuracy (95% CI)",
    "macro F1 (95% CI)",
    "balanced acc.",
    "log loss",
    "ECE",
]


def _load(run_dir: Path) -> tuple[dict, dict, dict]:
    try:
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        manifest = json.loads((run_dir / "manifest.json").read_text())
        evaluation = json.loads((run_dir / "evaluation.json").read_text())
    except FileNotFoundError as exc:
        raise BreedscopeError(
            f"{run_dir} is not a finished run ({Path(exc.filename).name} is missing)."
        ) from exc
    return config, manifest, evaluation


def comparison_table(run_dirs: list[Path]) -> tuple[Table, list[str]]:
    """The table, and notes (for example when the runs were not tested on the same manifest)."""
    rows, manifests = [], set()
    for run_dir in run_dirs:
        config, manifest, evaluation = _load(run_dir)
        manifests.add(manifest["csv_sha256"])
        accuracy_ci = evaluation["intervals"]["accuracy"]
        f1_ci = evaluation["intervals"]["macro_f1"]
        rows.append(
            [
                f"{run_dir.parent.name}/{run_dir.name}",
                manifest["dataset"]["name"] or "",
                config.get("preset") or "",
                config["model"]["backbone"],
                manifest["csv_sha256"][:10],
                str(evaluation["n_test"]),
                f"{evaluation['accuracy']:.3f} ({accuracy_ci[0]:.3f}–{accuracy_ci[1]:.3f})",
                f"{evaluation['macro']['f1-score']:.3f} ({f1_ci[0]:.3f}–{f1_ci[1]:.3f})",
                f"{evaluation['balanced_accuracy']:.3f}",
                f"{evaluation['log_loss']:.3f}",
                f"{evaluation['calibration']['ece']:.3f}",
            ]
        )
    notes = []
    if len(manifests) > 1:
        notes.append(
            "The runs used different manifests, so their test images differ; for a like-for-like "
            "comparison, run with --manifest pointing at one run's directory."
        )
    return Table(HEADER, rows), notes

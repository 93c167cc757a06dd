"""``breedscope audit DATASET``: the images whose label to doubt, before anything is trained on
them.

Every image of the dataset's manifest (as a run with the same settings would select it) goes
through the frozen backbone once (the feature cache a run uses, so an audit after a run, or a
run after an audit, computes nothing again); a probe on those features predicts each image from
grouped, stratified folds that never hold it (the folds cross-validation deals); cleanlab's
Datalab ranks the labels those predictions doubt, and finds outliers and near duplicates with
conflicting labels. Written to ``RUNS_DIR/DATASET/audit/``: ``issues.csv`` (one row per flagged
image, most suspect first), ``ranking.csv`` (every image, by how suspect its label is: the next
ones to look at), ``audit.json`` and a page through the reporter plugins.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from breedscope.config.settings import RunConfig
from breedscope.core import locks
from breedscope.core.atomic import atomic_path, write_json
from breedscope.core.errors import DataError
from breedscope.core.progress import console
from breedscope.data.manifest import Row
from breedscope.evaluation import label_audit
from breedscope.pipeline import crossval
from breedscope.pipeline.run import ensure_dataset, reused_or_new_manifest
from breedscope.plugins import Registry
from breedscope.report import figures
from breedscope.report.document import Document, Figure, Paragraph, Section, Table
from breedscope.report.reporter import ReporterSpec

FOLDER = "audit"  # RUNS_DIR/DATASET/audit
ISSUES = "issues.csv"
RANKING = "ranking.csv"  # every image, by how suspect its label is (flagged or not)
SUMMARY = "audit.json"
THUMBNAILS = "figures/issues.png"
LOCK = ".audit.lock"
COLUMNS = ("path", "given", "suggested", "score", "kind")
SHOWN = 16  # thumbnails on the page
LISTED = 60  # rows of the page's table (issues.csv holds them all)


@dataclass(frozen=True)
class SuspectImage:
    """A row of ``issues.csv``: an image, its given and suggested label, how suspect (0 to 1) and why."""

    path: str
    given: str
    suggested: str
    score: float
    kind: str

    def cells(self) -> list[str]:
        """The row as a table shows it (the columns of :data:`COLUMNS`)."""
        return [self.path, self.given, self.suggested, f"{self.score:.3f}", self.kind]


@dataclass(frozen=True)
class AuditOutcome:
    folder: Path
    suspects: list[SuspectImage]
    summary: dict
    reports: list[Path]


def audit_folder(config: RunConfig, dataset: str) -> Path:
    return Path(config.runs_dir) / dataset / FOLDER


def audit(config: RunConfig, registry: Registry, folds: int) -> AuditOutcome:
    """Audit the labels of ``config``'s dataset with ``folds`` grouped folds; write and return it."""
    from breedscope.pipeline.run import resolve_plugins

    label_audit.require_cleanlab()  # before any work
    chosen = resolve_plugins(config, registry)
    dataset = ensure_dataset(config.dataset.name, registry)
    manifest = crossval.as_pool(reused_or_new_manifest(config, dataset), folds)
    rows = manifest.rows
    classes = manifest.classes
    labels = np.array([classes.index(row.label) for row in rows])
    assignment = crossval.assign_folds(rows, folds, 1, config.train.seed)[0]
    folder = audit_folder(config, dataset.name)
    _refuse_a_run_directory(folder)
    folder.mkdir(parents=True, exist_ok=True)
    busy = f"{folder} is being written by another breedscope audit; wait for it to finish."
    with locks.exclusive(folder / LOCK, busy):
        vectors = _features(config, chosen.backbone, manifest, dataset.image_root)
        console.print(f"Auditing {len(rows)} labels: a probe on the features, {folds} grouped folds.")
        seed = config.train.seed
        found = label_audit.find_issues(vectors, labels, assignment, classes, seed)
        suspects = [
            SuspectImage(rows[i.index].path, i.given, i.suggested, i.score, i.kind) for i in found.issues
        ]
        predicted = found.probabilities.argmax(axis=1)
        ranked = [
            SuspectImage(
                rows[i].path, classes[labels[i]], classes[predicted[i]], found.label_suspicion[i], "label"
            )
            for i in found.ranking()
        ]
        summary = _summary(config, dataset.name, manifest.header, suspects, predicted, labels, folds)
        write_issues(folder / ISSUES, suspects)
        write_issues(folder / RANKING, ranked)
        write_json(folder / SUMMARY, summary)
        _thumbnails(suspects[:SHOWN], {row.path: row for row in rows}, dataset.image_root, config, folder)
        reports = render_audit(folder, chosen.reporters)
    return AuditOutcome(folder, suspects, summary, reports)


def _refuse_a_run_directory(folder: Path) -> None:
    """A run named ``audit`` owns that folder: the audit does not write into a run directory."""
    if (folder / "status.json").exists():
        raise DataError(
            f"{folder} is a run directory (a run named 'audit'); rename that run, or audit into another "
            "folder with --runs-dir."
        )


def _features(config: RunConfig, backbone, manifest, image_root: Path) -> np.ndarray:
    """Every image's features through the frozen backbone, unaugmented (the feature cache's view 0)."""
    from breedscope.features.loading import ImageLoader
    from breedscope.training.feature_data import Splits, feature_cache
    from breedscope.training.job import prepare

    prepared = prepare(config, backbone)
    cache = feature_cache(config, prepared, Splits.of(manifest), views=1)
    loader = ImageLoader(image_root, config.model.image_size)
    return cache.features(manifest.rows, loader, label="Features").read()


def _summary(
    config: RunConfig,
    dataset: str,
    header: dict,
    suspects: list[SuspectImage],
    predicted: np.ndarray,
    labels: np.ndarray,
    folds: int,
) -> dict:
    kinds = {kind: sum(s.kind == kind for s in suspects) for kind in label_audit.KINDS}
    return {
        "dataset": dataset,
        "images": len(labels),
        "classes": header.get("classes"),
        "folds": folds,
        "seed": config.train.seed,
        "backbone": config.model.backbone,
        "weights": config.model.weights,
        "image_size": config.model.image_size,
        "probe": f"logistic regression on standardised features, C={label_audit.PROBE_C}",
        "probe_accuracy": round(float((predicted == labels).mean()), 6),
        "suspects": len(suspects),
        "by_kind": kinds,
        "manifest_warnings": header.get("warnings", []),
    }


def write_issues(path: Path, suspects: list[SuspectImage]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(COLUMNS)
        for suspect in suspects:
            score = f"{suspect.score:.4f}"
            writer.writerow([suspect.path, suspect.given, suspect.suggested, score, suspect.kind])


def read_issues(path: Path) -> list[SuspectImage]:
    with open(path, newline="", encoding="utf-8") as handle:
        return [
            SuspectImage(r["path"], r["given"], r["suggested"], float(r["score"]), r["kind"])
            for r in csv.DictReader(handle)
        ]


def _caption(suspect: SuspectImage) -> str:
    short = lambda text: text if len(text) <= 14 else text[:13] + "…"  # noqa: E731
    return f"{suspect.kind} {suspect.score:.2f}\n{short(suspect.given)} → {short(suspect.suggested)}"


def _thumbnails(
    suspects: list[SuspectImage], by_path: dict[str, Row], image_root: Path, config: RunConfig, folder: Path
) -> Path | None:
    from breedscope.features.loading import ImageLoader

    target = folder / THUMBNAILS
    if not suspects:
        target.unlink(missing_ok=True)
        return None
    load = ImageLoader(image_root, min(config.model.image_size, 160))
    images = [load(by_path[s.path]).astype(np.uint8) for s in suspects]
    return figures.image_grid(images, [_caption(s) for s in suspects], target, columns=4)


def audit_document(folder: Path) -> Document:
    """The audit's page, from its stored files only (as a run's report is built)."""
    import json

    summary = json.loads((folder / SUMMARY).read_text(encoding="utf-8"))
    suspects = read_issues(folder / ISSUES)
    kinds = summary["by_kind"]
    text = (
        f"**{summary['suspects']}** of {summary['images']} images of **{summary['dataset']}** are suspect: "
        f"{kinds['label']} label(s) the out-of-fold predictions doubt, {kinds['duplicate']} near "
        f"duplicate(s) of an image with another label, {kinds['outlier']} outlier(s) unlike the rest. "
        f"Predictions come from a probe ({summary['probe']}) on the frozen {summary['backbone']} "
        f"features, trained on {summary['folds']} grouped folds that never hold the image it predicts "
        f"(out-of-fold accuracy {summary['probe_accuracy']:.1%}); cleanlab's Datalab ranks them. "
        "Score: how suspect, from 0 to 1. Look at each before you leave it out: breedscope run "
        "--exclude issues.csv trains without every image listed; ranking.csv orders every image "
        "by how suspect its label is, for the next ones to look at."
    )
    blocks: list = [Paragraph(text)]
    blocks += [Paragraph(f"Note: {w}.") for w in summary.get("manifest_warnings", [])]
    sections = [Section("Summary", blocks)]
    if suspects:
        if (folder / THUMBNAILS).is_file():
            shown = min(SHOWN, len(suspects))
            caption = f"The {shown} most suspect images: kind and score, given → suggested label."
            sections.append(Section("Most suspect", [Figure(Path(THUMBNAILS), caption, width_fraction=0.72)]))
        rows = [s.cells() for s in suspects[:LISTED]]
        more = f"; all {len(suspects)} in {ISSUES}" if len(suspects) > LISTED else ""
        sections.append(Section("Suspect images", [Table(list(COLUMNS), rows, f"Most suspect first{more}.")]))
    return Document(f"Label audit: {summary['dataset']}", "breedscope audit", folder, sections)


def render_audit(folder: Path, reporters: list[ReporterSpec]) -> list[Path]:
    """The page in each reporter's format, named ``audit.<format>`` (a reporter writes ``report.*``)."""
    document = audit_document(folder)
    written = []
    for reporter in reporters:
        path = reporter.render(document, folder)
        named = path.with_name(FOLDER + path.suffix)
        path.replace(named)
        written.append(named)
    return written

"""Commands on datasets: fetch, validate, split."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from breedscope.cli.app import app, out, parse_ratios
from breedscope.core import tables
from breedscope.core.progress import console

if TYPE_CHECKING:
    from breedscope.data.validate import Validation


def _print_validation(validation: Validation, found: Mapping[str, Any]) -> None:
    """The per-class table of ``validation``, then what ``found`` (its stored form) says in words."""
    from breedscope.data.validate import findings  # not at start-up: it imports numpy and imagehash

    by_class = validation.counts_by_class()
    reasons = sorted({k for counts in by_class.values() for k in counts} - {"found", "kept"})
    numbers = ["found", "kept", *reasons]
    rows = [[label, *(str(counts.get(c, 0)) for c in numbers)] for label, counts in by_class.items()]
    tables.show(out, "Validation", ["class", *numbers], rows, right=numbers)
    for line in findings(found):
        console.print(escape(line))


@app.command()
def fetch(
    name: Annotated[str, typer.Argument(help="Dataset plugin: see `breedscope datasets`.")],
    source: Annotated[
        Path | None, typer.Option("--from", help="An archive or folder you already have.")
    ] = None,
    as_name: Annotated[
        str | None,
        typer.Option("--name", help="Store it under this name (default: the plugin or source name)."),
    ] = None,
    slug: Annotated[str | None, typer.Option(help="Kaggle slug to download instead of the plugin's.")] = None,
    version: Annotated[
        int | None,
        typer.Option("--version", help="Kaggle dataset version (default: the plugin's pinned one)."),
    ] = None,
    latest: Annotated[bool, typer.Option(help="Download Kaggle's current version.")] = False,
    classes: Annotated[
        str | None, typer.Option(help="Keep only these classes (comma-separated); only they are checked.")
    ] = None,
    preset: Annotated[str | None, typer.Option(help="Keep only the classes this study preset uses.")] = None,
    force: Annotated[bool, typer.Option(help="Download and validate again even if already done.")] = False,
    min_side: Annotated[int, typer.Option(help="Exclude images smaller than this (px).")] = 32,
) -> None:
    """Download (or take `--from`) a dataset, validate every image, and store it.

    Examples: `breedscope fetch bccd` ·
    `breedscope fetch chest_xray --from ~/Downloads/archive.zip` ·
    `breedscope fetch folder --from ./my_photos --name pets`
    """
    from breedscope import api

    result = api.fetch_dataset(
        name,
        source,
        name=as_name,
        slug=slug,
        version=version,
        latest=latest,
        classes=[c.strip() for c in classes.split(",")] if classes else None,
        preset=preset,
        force=force,
        min_side=min_side,
    )
    if result.reused:
        console.print(
            f"'{result.dataset.name}' is already fetched ({result.dataset.info['images']} images); "
            "use --force to fetch it again."
        )
        return
    _print_validation(result.validation, result.dataset.validation())
    console.print(
        f"Stored [bold]{result.dataset.name}[/]: {len(result.validation.kept)} images in "
        f"{result.dataset.directory}"
    )


@app.command()
def validate(name: Annotated[str, typer.Argument(help="A fetched dataset.")]) -> None:
    """Decode and check every image of a fetched dataset again.

    Example: `breedscope validate bccd`
    """
    from breedscope import api

    validation = api.validate(name)
    _print_validation(validation, validation.to_json())


@app.command()
def split(
    name: Annotated[str, typer.Argument(help="A fetched dataset.")],
    ratios: Annotated[
        str | None, typer.Option("--split", help="train,val,test fractions, e.g. 0.8,0.1,0.1")
    ] = None,
    seed: Annotated[int, typer.Option(help="Split seed.")] = 42,
    balance: Annotated[str, typer.Option(help="none, cap, undersample, oversample, class_weights")] = "none",
    cap: Annotated[int | None, typer.Option(help="Images per class for --balance cap.")] = None,
    source_split: Annotated[bool, typer.Option("--source-split", help="Keep the publisher's split.")] = False,
    output: Annotated[Path | None, typer.Option(help="Folder for manifest.csv and manifest.json.")] = None,
) -> None:
    """Write a stratified, grouped split manifest for a fetched dataset.

    Example: `breedscope split chest_xray --split 0.75,0.15,0.10 --seed 1`
    """
    from breedscope import api

    manifest, path = api.split(
        name,
        split=parse_ratios(ratios),
        seed=seed,
        balance=balance,
        cap=cap,
        source_split=source_split,
        output=output,
    )
    counts, splits = manifest.counts(), ["train", "val", "test"]
    rows = [[label, *(str(counts[s].get(label, 0)) for s in splits)] for label in manifest.classes]
    tables.show(out, f"Manifest {path}", ["class", *splits], rows, right=splits)
    for warning in manifest.header["warnings"]:
        console.print(f"[yellow]warning:[/] {warning}")
    console.print(f"sha256 {manifest.sha256()}")


@app.command()
def audit(
    dataset: Annotated[str, typer.Argument(help="A fetched dataset (or a plugin that fetches itself).")],
    preset: Annotated[
        str | None, typer.Option(help="Preset whose backbone and split settings to use.")
    ] = None,
    config_file: Annotated[
        Path | None, typer.Option("--config", help="TOML or YAML config: backbone, image size, split...")
    ] = None,
    cv: Annotated[int, typer.Option(help="Grouped folds for the out-of-fold predictions.")] = 5,
    seed: Annotated[int | None, typer.Option()] = None,
    runs_dir: Annotated[Path | None, typer.Option(help="Writes RUNS_DIR/DATASET/audit.")] = None,
    report_format: Annotated[
        str | None, typer.Option("--format", help="Reporters for the page, e.g. markdown,pdf")
    ] = None,
) -> None:
    """Find images whose label to doubt, outliers and near duplicates with another label (cleanlab).

    Example: `breedscope audit breast --preset breast`, then
    `breedscope run --dataset breast --exclude runs/breast/audit/issues.csv`
    """
    from breedscope import api

    found = api.audit(
        dataset,
        preset=preset,
        config=config_file,
        cv=cv,
        seed=seed,
        runs_dir=runs_dir,
        formats=report_format.split(",") if report_format else None,
    )
    console.print(found.headline())
    table = found.table(10)
    if table.rows:
        tables.show(out, "Most suspect", table.header, table.rows, right=["score"])
    console.print(f"Suspect images: {found.issues_file}")
    for path in found.reports():
        console.print(f"Report: {path}")

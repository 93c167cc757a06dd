"""Reproducing the studies: reproduce."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from breedscope.cli.app import app, out
from breedscope.core import tables
from breedscope.core.errors import BreedscopeError
from breedscope.core.progress import console


@app.command()
def reproduce(
    study: Annotated[
        str | None, typer.Argument(help="A study preset: chest_xray, bccd, cats, breast...")
    ] = None,
    all_studies: Annotated[
        bool, typer.Option("--all", help="Every study whose dataset is fetched, and one table.")
    ] = False,
    dataset: Annotated[str | None, typer.Option(help="Another fetched dataset than the preset's.")] = None,
    cv: Annotated[
        int | None, typer.Option("--cv", help="Folds of the cross-validated runs [default: 5].")
    ] = None,
    repeats: Annotated[int | None, typer.Option(help="Repeats of the cross-validation (1).")] = None,
    config_file: Annotated[Path | None, typer.Option("--config", help="Settings for every run.")] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    runs_dir: Annotated[Path | None, typer.Option(help="Where run directories go.")] = None,
    report_format: Annotated[
        str | None, typer.Option("--format", help="Reporters, e.g. markdown,pdf")
    ] = None,
    resume: Annotated[Path | None, typer.Option(help="Finish an interrupted reproduction.")] = None,
) -> None:
    """Reproduce a study and correct it, on features extracted once: the study's own protocol, the
    sound one, grouped cross-validation, and the measured effect of each difference, on one page.

    Examples: `breedscope reproduce chest_xray` · `breedscope reproduce bccd --dataset pbc` ·
    `breedscope reproduce --all` · `breedscope reproduce --resume runs/chest_xray/reproduce-chest_xray`
    """
    from breedscope import api
    from breedscope.report.reproduction import figures_table, overview_table, points

    options = dict(
        cv=cv if cv is not None else 5,
        repeats=repeats if repeats is not None else 1,
        config=config_file,
        seed=seed,
        runs_dir=runs_dir,
        formats=report_format.split(",") if report_format else None,
    )
    if resume is not None:
        given = {
            "--cv": cv, "--repeats": repeats, "--config": config_file, "--seed": seed,
            "--runs-dir": runs_dir, "--format": report_format, "--dataset": dataset, "STUDY": study,
        }  # fmt: skip
        changed = [name for name, value in given.items() if value is not None]
        if changed:
            raise BreedscopeError(
                f"--resume finishes a reproduction as it was planned, so {', '.join(changed)} cannot change "
                f"it; drop {'it' if len(changed) == 1 else 'them'}, or start a new reproduction with "
                "them (`breedscope reproduce STUDY --cv 3`)."
            )
    if all_studies:
        if study or resume or dataset:
            raise BreedscopeError("--all reproduces every fetched study as its preset has it; name no study.")
        from breedscope.pipeline import reproduction

        done, skipped, overview = reproduction.start_all(api.plugins(), **options)
        for sentence in skipped:
            console.print(f"Skipped {sentence}.")
        if overview is None:
            raise BreedscopeError(
                "No study's dataset is fetched; fetch one first, e.g. `breedscope fetch chest_xray`."
            )
        table = overview_table([api.Reproduction(path).results for path in done])
        tables.show(out, "Studies reproduced", table.header, table.rows, may_turn=True)
        console.print(f"Table: {overview}")
        return
    if resume is not None:
        finished = api.reproduce(resume=resume)
    else:
        finished = api.reproduce(study, dataset=dataset, **options)
    table = figures_table(finished.results, with_protocol=False)
    tables.show(out, "Reproduction", table.header, table.rows, may_turn=True)
    for effect in finished.effects:
        low, high = effect["interval"]
        console.print(
            f"Effect of {effect['difference']}: {points(effect['effect'])} points of accuracy "
            f"(95% CI {points(low)} to {points(high)}) on {effect['images']} images."
        )
    for path in sorted(finished.path.glob("report.*")):
        console.print(f"Report: {path}")

"""The reproduction page: a study's figure beside its faithful reproduction, the sound figure and
the cross-validated one, and what each difference in protocol is worth. Rendered by the same
reporter plugins as a run's report, from ``results.json`` (written by
``breedscope.pipeline.reproduction``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from breedscope.config.presets import Preset
from breedscope.report import figures
from breedscope.report.document import Document, Figure, Paragraph, Section, Table
from breedscope.report.reporter import ReporterSpec

INTERVALS_FIGURE = "figures/intervals.png"


def _ci(low: float, high: float) -> str:
    return f"{low:.3f} – {high:.3f}"


def points(value: float) -> str:
    """Accuracy as signed percentage points: ``+2.1``; never ``-0.0``."""
    text = f"{value * 100:+.1f}"
    return "0.0" if text in ("+0.0", "-0.0") else text


def figures_table(results: dict[str, Any], with_protocol: bool = True) -> Table:
    """The paper's figure, then each run's, with intervals; ``with_protocol=False`` leaves out the
    protocol's description (a terminal's width)."""
    reported = results["reported"]

    def paper(key: str) -> str:
        return f"{reported[key]:.3f}" if key in reported else "n/a"

    rows = [["paper", "as reported", "", paper("accuracy"), paper("macro_f1")]]
    for run in results["runs"]:
        rows.append(
            [
                f"{run['key']}/",
                run["protocol"],
                str(run["n_test"]),
                f"{run['accuracy']:.3f} ({_ci(*run['accuracy_interval'])})",
                f"{run['macro_f1']:.3f} ({_ci(*run['macro_f1_interval'])})",
            ]
        )
    header = ["run", "protocol", "test images", "accuracy (95% CI)", "macro F1 (95% CI)"]
    if not with_protocol:
        header, rows = [header[0], *header[2:]], [[row[0], *row[2:]] for row in rows]
    return Table(header, rows)


def effects_section(results: dict[str, Any]) -> Section:
    effects, folds = results["effects"], results["folds"]
    blocks: list = []
    if effects:
        rows = [
            [
                e["difference"],
                f"{e['sound_accuracy']:.3f}",
                f"{e['changed_accuracy']:.3f}",
                f"{points(e['effect'])} ({points(e['interval'][0])} to {points(e['interval'][1])})",
                f"{e['images']} ({e['groups']} groups)",
            ]
            for e in effects
        ]
        blocks.append(
            Table(
                ["the study's choice", "sound CV", "with the choice", "effect, points (95% CI)", "images"],
                rows,
                "Each effect is measured on the same images, each tested once per repeat by a head that "
                "never saw it: accuracy with the study's choice minus accuracy without it. The interval "
                "resamples the sound protocol's groups (a patient, a duplicate cluster).",
            )
        )
        reported = results["reported"].get("accuracy")
        sound_cv = next(r for r in results["runs"] if r["key"] == "cv")
        for e in effects:
            low, high = e["interval"]
            if e["groups"] == e["images"]:  # no group holds two images: both protocols deal alike
                blocks.append(
                    Paragraph(
                        f"**{e['difference']}** changes nothing on this dataset: no two of its "
                        f"{e['images']} images share a group (a patient, a duplicate cluster), so "
                        "splitting per image and per group deal the images alike."
                    )
                )
                continue
            if low > 0:
                verdict = "raises the measured accuracy"
            elif high < 0:
                verdict = "lowers the measured accuracy"
            else:
                verdict = "has no effect distinguishable from zero on the accuracy"
            text = (
                f"**{e['difference']}** {verdict}: {points(e['effect'])} points "
                f"(95% CI {points(low)} to {points(high)}) over {e['images']} images, by {folds}-fold "
                "cross-validation."
            )
            if reported is not None and _inside(reported, sound_cv):
                text += (
                    f" The paper's {reported:.3f} lies inside the sound cross-validated interval "
                    f"({_ci(*sound_cv['accuracy_interval'])}): consistent with the paper."
                )
            elif reported is not None:
                gap = reported - sound_cv["accuracy"]
                if low > 0 or high < 0:
                    text += (
                        f" Of the {points(gap)} points between the paper's {reported:.3f} and the sound "
                        f"cross-validated {sound_cv['accuracy']:.3f}, this difference accounts for "
                        f"{points(e['effect'])}."
                    )
                else:
                    text += (
                        f" It does not explain the {points(gap)} points between the paper's "
                        f"{reported:.3f} and the sound cross-validated {sound_cv['accuracy']:.3f}"
                        + (f"; {data_gap}." if (data_gap := _data_gap(results)) else ".")
                    )
            blocks.append(Paragraph(text))
    else:
        blocks.append(
            Paragraph(
                "This study's preset has no setting that re-runs the study's own choice, so no effect "
                "is measured; its differences are described below."
            )
        )
    blocks += [Paragraph(sentence) for sentence in results["differences"]]
    return Section("What each difference in protocol is worth", blocks)


def _consistency(results: dict[str, Any]) -> Paragraph | None:
    """Whether the paper's accuracy lies inside the sound cross-validated interval, and what
    else differs when it does not."""
    reported = results["reported"].get("accuracy")
    cv = next((r for r in results["runs"] if r["key"] == "cv"), None)
    if reported is None or cv is None:
        return None
    if _inside(reported, cv):
        return Paragraph(
            f"The paper's accuracy of {reported:.3f} lies inside the sound cross-validated 95% interval "
            f"({_ci(*cv['accuracy_interval'])}): consistent with the paper."
        )
    gap = _data_gap(results)
    return Paragraph(
        f"The paper's accuracy of {reported:.3f} lies outside the sound cross-validated 95% interval "
        f"({_ci(*cv['accuracy_interval'])}), {points(reported - cv['accuracy'])} points away"
        + (f"; {gap}." if gap else ".")
    )


def _inside(reported: float, run: dict[str, Any]) -> bool:
    low, high = run["accuracy_interval"]
    return low <= reported <= high


def _data_gap(results: dict[str, Any]) -> str | None:
    """What differs in the data, when the paper's set was another size: a gap in figures may be
    a gap in data (this archive's 351 BCCD images against the study's 3,500)."""
    data = results.get("data")
    if not data or not data["study"]["images"]:
        return None
    theirs, ours = data["study"]["images"], data["ours"]["images"]
    if abs(theirs - ours) <= 0.1 * theirs:
        return None
    return f"the data differ too: the study had {theirs:,} images, these runs {ours:,}"


def data_table(results: dict[str, Any]) -> Table | None:
    """The study's data beside these runs' (``None`` for results written before it was kept)."""
    data = results.get("data")
    if not data:
        return None
    study, ours = data["study"], data["ours"]

    def stated(value: object) -> str:
        return "not stated" if value in (None, "") else f"{value:,}" if isinstance(value, int) else str(value)

    rows = [
        ["images", stated(study["images"]), stated(ours["images"])],
        [
            "test images",
            stated(study["test_images"]),
            f"{ours['test_images']:,} (one split); {ours['cv_test_images']:,} (cross-validated)",
        ],
        ["classes", stated(study["classes"]), stated(ours["classes"])],
        ["source", stated(study["source"]), stated(ours["source"])],
    ]
    return Table(["", "the study", "these runs"], rows, "The data: a gap in figures may be a gap in data.")


def build_page(directory: Path, results: dict[str, Any], preset: Preset) -> Document:
    runs = results["runs"]
    figures.intervals(
        [r["key"] for r in runs],
        [r["accuracy"] for r in runs],
        [tuple(r["accuracy_interval"]) for r in runs],
        results["reported"].get("accuracy"),
        directory / INTERVALS_FIGURE,
    )
    cv = next(r for r in runs if r["key"] == "cv")
    intro = (
        f"Study: {results['title']}. Dataset: {results['dataset']}. Every run below used the same "
        f"backbone features, extracted once. The cross-validated figure tests all {cv['n_test']} "
        "images and is the one to quote; one split's figure rests on a fraction of them."
    )
    sections = [
        Section(
            "The paper's figure and ours",
            [
                Paragraph(intro),
                figures_table(results),
                *filter(None, [data_table(results), _consistency(results)]),
                Figure(
                    Path(INTERVALS_FIGURE), "Accuracy of each run with its 95% interval; dashed: the paper."
                ),
            ],
        ),
        effects_section(results),
    ]
    if preset.study and preset.study.notes:
        sections.append(Section("Notes on the study", [Paragraph(n) for n in preset.study.notes]))
    return Document(
        title=f"Reproduction: {results['title']}",
        subtitle=f"breedscope reproduce {results['study']} · {directory}",
        run_dir=directory,
        sections=sections,
    )


def render_reproduction(
    directory: Path, results: dict[str, Any], preset: Preset, reporters: list[ReporterSpec]
) -> list[Path]:
    document = build_page(directory, results, preset)
    return [reporter.render(document, directory) for reporter in reporters]


def overview_table(all_results: list[dict[str, Any]]) -> Table:
    """``reproduce --all``: one row per study."""
    rows = []
    for results in all_results:
        by_key = {r["key"]: r for r in results["runs"]}
        paper = results["reported"].get("accuracy")
        faithful, cv = by_key.get("faithful"), by_key["cv"]
        effects = "; ".join(
            f"{e['difference']}: {points(e['effect'])} "
            f"({points(e['interval'][0])} to {points(e['interval'][1])})"
            for e in results["effects"]
        )
        rows.append(
            [
                results["study"],
                f"{paper:.3f}" if paper is not None else "n/a",
                f"{faithful['accuracy']:.3f} ({_ci(*faithful['accuracy_interval'])})" if faithful else "n/a",
                f"{cv['accuracy']:.3f} ({_ci(*cv['accuracy_interval'])})",
                effects or "none re-run",
            ]
        )
    header = [
        "study",
        "paper",
        "faithful, one split (95% CI)",
        "sound, CV (95% CI)",
        "effect of each difference, points",
    ]
    return Table(header, rows)

"""``MODEL_CARD.md`` beside every export: what a person deploying the model must know, from the
run's stored files only (data and source, protocol, metrics with intervals, the operating point,
and the limits a small dataset puts on all of it)."""

from __future__ import annotations

from pathlib import Path

from breedscope.core.markdown import markdown_literal as literal
from breedscope.core.versions import __version__
from breedscope.runs.rundir import RunDir

MODEL_CARD = "MODEL_CARD.md"


def _source(dataset: dict) -> str:
    if dataset.get("handle"):
        return f"Kaggle `{literal(dataset['handle'])}`"
    if dataset.get("source_sha256"):
        digest = dataset["source_sha256"][:16]
        return f"the {literal(dataset.get('source') or 'local')} it was fetched from (SHA-256 `{digest}…`)"
    return literal(dataset.get("source") or "a local folder")


def _protocol(config: dict, manifest: dict) -> str:
    split, counts = manifest["split"], manifest["counts"]
    sizes = ", ".join(f"{name} {sum(counts[name].values())}" for name in ("train", "val", "test"))
    grouping = (
        "grouped: a patient's images, exact and near duplicates kept on one side"
        if split.get("grouped", True)
        else "per image (a patient's images may sit on both sides: the test figures can be optimistic)"
    )
    cv = config.get("cv") or {}
    tested = f"grouped {cv['folds']}-fold cross-validation" if cv.get("folds") else f"one split ({sizes})"
    model = config["model"]
    return (
        f"{tested}, {grouping}, seed {manifest['seed']}; {literal(model['backbone'])} "
        f"({literal(model['weights'])} weights) at {model['image_size']} px, preset "
        f"`{literal(config.get('preset') or 'none')}`."
    )


def model_card(run_dir: Path, exported: Path) -> str:
    """The card of the model exported as ``exported`` from the finished run in ``run_dir``."""
    directory = RunDir(run_dir)
    config, manifest, evaluation = (
        directory.config_data(),
        directory.manifest_header(),
        directory.evaluation(),
    )
    dataset = manifest["dataset"]
    accuracy, f1 = evaluation.interval("accuracy"), evaluation.interval("macro_f1")
    lines = [
        f"# Model card: {literal(dataset['name'])} classifier",
        "",
        f"`{literal(exported.name)}`, exported by breedscope {__version__} from the run "
        f"`{literal(run_dir)}`. Input: an RGB image, {config['model']['image_size']}x"
        f"{config['model']['image_size']} pixels, values in [0, 255] (the model normalises it). Output: "
        f"one probability per class, in the order of `labels.txt`.",
        "",
        "## Data",
        "",
        f"Dataset `{literal(dataset['name'])}` from {_source(dataset)}: {len(evaluation.classes)} classes "
        f"({', '.join(literal(c) for c in evaluation.classes)}). Every image was decoded and checked; "
        f"the split manifest's SHA-256 is `{manifest['csv_sha256'][:16]}…`.",
        "",
        "## Protocol",
        "",
        _protocol(config, manifest),
        "",
        "## Metrics",
        "",
        f"On {evaluation.n_test} test images: accuracy {evaluation.accuracy:.3f} (95% CI "
        f"{accuracy[0]:.3f}–{accuracy[1]:.3f}), macro F1 {evaluation.macro_f1:.3f} (95% CI {f1[0]:.3f}–"
        f"{f1[1]:.3f}); intervals: {literal(evaluation.interval_method)}.",
        "",
        "| class | precision | recall | F1 | test images |",
        "|---|---|---|---|---|",
        *(
            f"| {literal(name)} | {m.precision:.3f} | {m.recall:.3f} | {m.f1:.3f} | "
            f"{evaluation.support_cell(name)} |"
            for name, m in evaluation.per_class.items()
        ),
    ]
    point = evaluation.operating_point
    if point is not None:
        lines += ["", "## Operating point", "", literal(point.sentence())]
    limits = [*evaluation.caveats(), *(f"{w}." for w in manifest.get("warnings", []))]
    if not config["split"].get("grouped", True):
        limits.append("The split was per image, so near-identical images may sit in train and test.")
    excluded = manifest.get("excluded")
    if excluded:
        limits.append(
            f"{excluded['images']} image(s) listed in {excluded['file']} were left out before the split."
        )
    lines += ["", "## Limits", "", *(f"- {literal(limit)}" for limit in limits)]
    lines += [
        f"- The figures hold for images like these {evaluation.n_test} test images, from this dataset's "
        "source; on another hospital's, scanner's or population's images, validate again "
        "(`breedscope evaluate RUN --dataset OTHER`).",
        "",
    ]
    return "\n".join(lines)

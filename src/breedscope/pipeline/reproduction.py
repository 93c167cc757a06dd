"""A study reproduced and corrected (``breedscope reproduce STUDY``).

One command runs, on features extracted once (the feature cache serves every run):

- the study's own protocol (its preset with ``--faithful``), on one split, as the paper did;
- breedscope's sound protocol (the preset), on one split;
- the sound protocol cross-validated (grouped K-fold: every image is tested once);
- for each way the study's protocol differs, the sound protocol with only that difference,
  cross-validated on the same images, so that the difference's effect is a *paired* difference
  in accuracy with a grouped bootstrap interval.

Each is an ordinary run directory inside the reproduction's own directory, so ``compare``,
``report`` and ``open_run`` work on them; the reproduction page sets the paper's figure beside
them. An interrupted reproduction resumes: finished runs are kept, an unfinished one resumes.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from breedscope.config import layering, presets
from breedscope.config.presets import Preset, Study
from breedscope.config.settings import merge, read_file
from breedscope.core.atomic import write_json
from breedscope.core.errors import BreedscopeError, ConfigError, Interrupted
from breedscope.core.progress import console
from breedscope.data import store
from breedscope.evaluation.metrics import bootstrap_interval
from breedscope.pipeline import run as pipeline
from breedscope.plugins import Registry
from breedscope.runs.rundir import CONFIG, RunDir, read_json

PLAN = "reproduction.json"  # what to run: written first, so that --resume runs the same
RESULTS = "results.json"  # the figures the page shows, written when every run has finished


@dataclass(frozen=True)
class Member:
    """One run of a reproduction: its directory name, what it is, and how it is configured."""

    key: str
    protocol: str
    faithful: dict[str, Any]  # the study's settings it applies on top of the sound preset
    cross_validated: bool


def differences(preset: Preset) -> list[dict[str, Any]]:
    """The study's protocol as separate differences: one per section of its faithful layer
    (``split``, ``model``, ``train``...), since the settings of one section belong together
    (fine-tuning's layers, epochs and learning rate are one choice)."""
    return [{section: values} for section, values in preset.faithful.items()]


def describe(difference: dict[str, Any]) -> str:
    """``split.grouped = False``: a difference as the config spells it."""
    parts = []
    for section, values in difference.items():
        for key, value in values.items() if isinstance(values, dict) else [("", values)]:
            parts.append(f"{section}.{key} = {value}" if key else f"{section} = {value}")
    return ", ".join(parts)


def plan(preset: Preset, folds: int) -> list[Member]:
    members = []
    if preset.faithful:
        members.append(
            Member("faithful", "the study's protocol, one split (--faithful)", preset.faithful, False)
        )
    members.append(Member("sound", "breedscope's sound protocol, one split", {}, False))
    members.append(Member("cv", f"sound protocol, {folds}-fold cross-validation (pooled)", {}, True))
    found = differences(preset)
    for difference in found:
        key = "cv-faithful" if len(found) == 1 else f"cv-faithful-{next(iter(difference))}"
        members.append(
            Member(key, f"sound protocol with {describe(difference)}, {folds}-fold CV", difference, True)
        )
    return members


@dataclass(frozen=True)
class Effect:
    """The paired effect of one protocol difference on accuracy, on the same images."""

    difference: str
    sound_accuracy: float
    changed_accuracy: float
    effect: float  # changed minus sound, in accuracy (0.021 is 2.1 points)
    interval: tuple[float, float]
    images: int
    groups: int


def _correct_by_image(run_dir: Path) -> dict[tuple[str, int], bool]:
    """Each out-of-fold prediction's correctness, keyed by (path, repeat) as predictions.csv
    lists each image once per repeat."""
    seen: Counter[str] = Counter()
    correct = {}
    with open(RunDir(run_dir).predictions_file, encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            seen[row["path"]] += 1
            correct[(row["path"], seen[row["path"]])] = row["label"] == row["predicted"]
    return correct


def paired_effect(sound_dir: Path, changed_dir: Path, difference: str, seed: int) -> Effect:
    """Accuracy with the difference minus accuracy without, over the images both tested, with a
    bootstrap interval that resamples the sound run's groups (a patient, a duplicate cluster)."""
    sound, changed = _correct_by_image(sound_dir), _correct_by_image(changed_dir)
    keys = sorted(sound.keys() & changed.keys())
    if not keys:
        raise BreedscopeError(
            f"{sound_dir} and {changed_dir} share no tested image; their effect cannot be paired."
        )
    group_of = {row.path: row.group or row.path for row in RunDir(sound_dir).manifest().rows}
    without = np.array([sound[k] for k in keys], dtype=float)
    with_ = np.array([changed[k] for k in keys], dtype=float)
    groups = [group_of.get(path, path) for path, _ in keys]
    low, high = bootstrap_interval(without, with_, lambda a, b: float(b.mean() - a.mean()), groups, seed=seed)
    return Effect(
        difference=difference,
        sound_accuracy=float(without.mean()),
        changed_accuracy=float(with_.mean()),
        effect=float(with_.mean() - without.mean()),
        interval=(low, high),
        images=len({path for path, _ in keys}),
        groups=len(set(groups)),
    )


def _run_member(
    registry: Registry, member_dir: Path, config_layer: dict, preset: Preset, member: Member
) -> None:
    """Run one member into ``member_dir``; a finished one is kept, an interrupted one resumed."""
    directory = RunDir(member_dir)
    if (member_dir / CONFIG).is_file():
        if directory.status().get("state") != "succeeded":
            console.print(f"Resuming {member_dir}.")
            pipeline.run(directory.config(), registry, run_dir=member_dir)
        return
    if member_dir.exists():  # made, then killed before its config was written: it holds nothing
        shutil.rmtree(member_dir)
    whole = bool(member.faithful) and member.faithful == preset.faithful
    # One difference sits where --faithful places the study's settings: above the preset, below
    # the user's config and flags.
    layer = config_layer if whole else merge(member.faithful, config_layer)
    config = layering.resolve_config(registry, preset.name, layer, faithful=whole, name=member.key)
    pipeline.run(config, registry, new_dir=member_dir)


def _study_preset(registry: Registry, study: str) -> Preset:
    preset = presets.get(study, registry.presets)
    if preset.study is None:
        studies = ", ".join(name for name, p in registry.presets.items() if p.study)
        raise ConfigError(f"'{study}' is a preset without a study to reproduce; use one of {studies}.")
    return preset


def start(
    registry: Registry,
    study: str,
    *,
    cv: int = 5,
    repeats: int = 1,
    config: str | Path | dict | None = None,
    **settings: object,
) -> Path:
    """Plan a reproduction in a new directory, ``RUNS_DIR/DATASET/reproduce-STUDY``, run it and
    write its page; return the directory."""
    _study_preset(registry, study)
    file_layer = config if isinstance(config, dict) else read_file(Path(config)) if config else {}
    layer = merge(file_layer, layering.settings_layer(**settings))
    layer["cv"] = {"folds": cv, "repeats": repeats}
    sound = layering.resolve_config(registry, study, layer)  # refuses bad settings before any work
    if sound.train.strategy == "multiworker":
        raise ConfigError(
            "A reproduction runs its members one after another on one machine; drop --strategy "
            "multiworker (a single `breedscope run` can train on several machines)."
        )
    pipeline.check_runs_dir(sound.runs_dir)
    directory = RunDir.create(sound.runs_dir, sound.dataset.name, f"reproduce-{study}")
    write_json(directory / PLAN, {"study": study, "folds": cv, "repeats": repeats, "config": layer})
    return resume(registry, directory.path)


def resume(registry: Registry, path: str | Path) -> Path:
    """Run (or finish) the reproduction planned in ``path`` and write its page."""
    from breedscope.report.reproduction import render_reproduction

    directory = RunDir(path)
    spec = read_plan(directory.path)
    preset = _study_preset(registry, spec["study"])
    members = plan(preset, spec["folds"])
    with directory.writing():
        directory.set_status("running")
        console.print(f"Reproduction directory: [bold]{directory.path}[/]")
        try:
            for number, member in enumerate(members, 1):
                console.print(f"[bold]Run {number} of {len(members)}:[/] {member.protocol}.")
                layer = dict(spec["config"])
                if not member.cross_validated:
                    layer["cv"] = {"folds": None}
                _run_member(registry, directory / member.key, layer, preset, member)
            results = summarise(directory.path, preset, members, spec)
            write_json(directory / RESULTS, results)
            formats = RunDir(directory / "sound").config().report.formats
            reporters = [registry.pick("reporters", name) for name in formats]
            render_reproduction(directory.path, results, preset, reporters)
        except (Interrupted, KeyboardInterrupt):  # inside a run, or between two
            directory.set_status("interrupted")
            raise Interrupted(
                f"{directory.path} keeps every finished run.", "reproduce", directory.path
            ) from None
        except BaseException as exc:
            directory.set_status("failed", error=str(exc) or type(exc).__name__)
            raise
        directory.set_status("succeeded")
    return directory.path


def read_plan(path: Path) -> dict[str, Any]:
    file = path / PLAN
    if not file.is_file():
        raise BreedscopeError(f"{path} has no {PLAN}; pass a directory that `breedscope reproduce` made.")
    return read_json(file)


def summarise(path: Path, preset: Preset, members: list[Member], spec: dict[str, Any]) -> dict[str, Any]:
    """The page's figures: each run's headline with its interval, and each difference's effect."""
    assert preset.study is not None
    rows = []
    for member in members:
        evaluation = RunDir(path / member.key).evaluation()
        rows.append(
            {
                "key": member.key,
                "protocol": member.protocol,
                "cross_validated": member.cross_validated,
                "n_test": evaluation.n_test,
                "accuracy": evaluation.accuracy,
                "accuracy_interval": list(evaluation.interval("accuracy")),
                "macro_f1": evaluation.macro_f1,
                "macro_f1_interval": list(evaluation.interval("macro_f1")),
            }
        )
    seed = RunDir(path / "cv").config().train.seed
    effects = [
        paired_effect(path / "cv", path / member.key, describe(member.faithful), seed)
        for member in members
        if member.cross_validated and member.faithful
    ]
    return {
        "study": preset.name,
        "title": preset.study.title,
        "dataset": RunDir(path / "sound").config().dataset.name,
        "data": _data(RunDir(path / "sound"), RunDir(path / "cv"), preset.study),
        "reported": preset.study.reported,
        "folds": spec["folds"],
        "repeats": spec["repeats"],
        "runs": rows,
        "effects": [asdict(effect) for effect in effects],
        "described_only": [] if preset.faithful else list(preset.differences),
        "differences": list(preset.differences),
    }


def _data(sound: RunDir, cv: RunDir, study: Study) -> dict[str, Any]:
    """The data the paper used beside the data these runs used: images, test images, classes
    and where each came from (with the version and a digest of the images, for ours)."""
    header = sound.manifest_header()
    dataset = header.get("dataset", {})
    where = dataset.get("handle") or dataset.get("source") or dataset.get("name") or "unknown"
    digest = dataset.get("content_sha256") or dataset.get("source_sha256")
    return {
        "study": {
            "images": study.images,
            "test_images": study.test_images,
            "classes": study.classes,
            "source": study.source,
        },
        "ours": {
            "images": sum(sum(counts.values()) for counts in header.get("counts", {}).values()),
            "test_images": sound.evaluation().n_test,
            "cv_test_images": cv.evaluation().n_test,
            "classes": len(header.get("classes", [])),
            "source": f"{where}" + (f" (images sha256 {digest[:12]}…)" if digest else ""),
        },
    }


def fetched_studies(registry: Registry) -> tuple[list[str], list[str]]:
    """Studies whose dataset is fetched, and sentences for those skipped."""
    ready, skipped = [], []
    for name, preset in registry.presets.items():
        if preset.study is None:
            continue
        dataset = preset.config.get("dataset", {}).get("name")
        if dataset is None:
            skipped.append(
                f"{name}: the preset names no dataset (run `breedscope reproduce {name} --dataset NAME`)"
            )
        elif store.load(dataset) is None:
            skipped.append(f"{name}: '{dataset}' is not fetched (run `breedscope fetch {dataset}`)")
        else:
            ready.append(name)
    return ready, skipped


OVERVIEW = "reproductions.md"  # reproduce --all's table, in the runs folder


def start_all(registry: Registry, **options: Any) -> tuple[list[Path], list[str], Path | None]:
    """Reproduce every study whose dataset is fetched (``options`` as :func:`start` takes them);
    return their directories, the studies skipped (one sentence each) and the overview table's
    file, ``RUNS_DIR/reproductions.md``."""
    from breedscope.core.atomic import write_text
    from breedscope.report.reproduction import overview_table

    ready, skipped = fetched_studies(registry)
    done = [start(registry, study, **options) for study in ready]
    if not done:
        return [], skipped, None
    table = overview_table([json.loads((path / RESULTS).read_text(encoding="utf-8")) for path in done])
    overview = done[0].parent.parent / OVERVIEW
    lines = ["# Studies reproduced by breedscope", "", *table.markdown_lines(), ""]
    lines += [f"- {path.parent.name}/{path.name}/report.md" for path in done]
    lines += [f"- skipped {sentence}" for sentence in skipped]
    write_text(overview, "\n".join(lines) + "\n")
    return done, skipped, overview

"""Building a report from a stored run (tests/fixtures/finished_run: the files a small two-class
run with the chest_xray preset wrote, its manifest marked as from the Kaggle chest set), without
TensorFlow and without training."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from breedscope import plugins
from breedscope.evaluation.metrics import Evaluation
from breedscope.report.build import build_document
from breedscope.report.compare import comparison_table
from breedscope.runs.rundir import RunDir
from tests.helpers import REPO

FIXTURE = REPO / "tests" / "fixtures" / "finished_run"


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A copy of the stored run, as RUNS/xray/run (reports draw their figures beside it)."""
    target = tmp_path / "runs" / "xray" / "run"
    shutil.copytree(FIXTURE, target)
    return target


def _table(document, title: str):
    section = next(s for s in document.sections if s.title == title)
    return next(b for b in section.blocks if hasattr(b, "rows"))


def test_the_report_shows_the_stored_figures_and_draws_its_pictures(run_dir: Path) -> None:
    stored = json.loads((run_dir / "evaluation.json").read_text())
    document = build_document(run_dir, plugins.registry().presets)

    summary = document.sections[0].blocks[0].text
    assert "Kaggle paultimothymooney/chest-xray-pneumonia/versions/2" in summary  # the data's version
    titles = [s.title for s in document.sections]
    assert titles[:3] == ["Summary", "Comparison with the study", "Metrics on the test split"]
    low, high = stored["intervals"]["accuracy"]
    metrics = {row[0]: row[1:] for row in _table(document, "Metrics on the test split").rows}
    assert metrics["accuracy"] == [f"{stored['accuracy']:.3f}", f"{low:.3f} – {high:.3f}"]
    assert metrics["sensitivity (PNEUMONIA)"][0] == f"{stored['sensitivity']:.3f}"
    for figure in ("training_curves", "confusion_matrix", "reliability", "roc"):
        assert (run_dir / "figures" / f"{figure}.png").stat().st_size > 1000

    # The study's reported accuracy beside ours, from the chest_xray preset's plugin.
    study = plugins.registry().presets["chest_xray"].study
    comparison = {row[0]: row for row in _table(document, "Comparison with the study").rows}
    assert comparison["accuracy"][1] == f"{study.reported['accuracy']:.3f}"
    assert comparison["accuracy"][2].startswith(f"{stored['accuracy']:.3f}")


def test_markdown_report_renders_from_the_document(run_dir: Path) -> None:
    from breedscope.pipeline.render import render_reports

    (path,) = render_reports(run_dir, ["markdown"], plugins.registry())
    text = path.read_text()
    assert text.startswith("# breedscope report: xray")
    assert "![" in text and "figures/confusion_matrix.png" in text


def test_compare_reads_runs_through_the_run_directory(run_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "runs" / "xray" / "run-2"
    shutil.copytree(run_dir, other)
    table, notes = comparison_table([run_dir, other])
    assert [row[0] for row in table.rows] == ["xray/run", "xray/run-2"]
    assert notes == []  # one manifest: no warning
    (other / "evaluation.json").unlink()
    with pytest.raises(Exception, match=r"run-2 has no evaluation\.json, though the run finished"):
        comparison_table([run_dir, other])
    assert RunDir(run_dir).history()[0]["epoch"] == 1.0


def test_compare_names_how_each_run_was_tested(run_dir: Path, tmp_path: Path) -> None:
    import yaml

    other = tmp_path / "runs" / "xray" / "cv"
    shutil.copytree(run_dir, other)
    config = yaml.safe_load((other / "config.yaml").read_text())
    config.update(faithful=True, cv={"folds": 5, "repeats": 2})
    (other / "config.yaml").write_text(yaml.safe_dump(config))
    table, _ = comparison_table([run_dir, other])
    column = table.header.index("protocol")
    assert [row[column] for row in table.rows] == ["one split", "5-fold CV x 2, faithful"]


def test_compare_at_80_columns_shows_every_interval_whole(run_dir: Path, tmp_path: Path) -> None:
    from tests.helpers import cli

    other = tmp_path / "runs" / "xray" / "run-2"
    shutil.copytree(run_dir, other)
    result = cli("compare", str(run_dir), str(other), env={"COLUMNS": "80"})
    assert result.returncode == 0, result.stderr
    stored = json.loads((run_dir / "evaluation.json").read_text())
    low, high = stored["intervals"]["accuracy"]
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in result.stdout
    interval_row = next(line for line in lines if "accuracy (95% CI)" in line)
    assert interval_row.count(f"{stored['accuracy']:.3f} ({low:.3f}–{high:.3f})") == 2


def test_per_class_figures_on_a_handful_of_images_are_said_to_be_not_meaningful(run_dir: Path) -> None:
    # The stored run tests 4 images per class: too few for per-class figures to mean much.
    document = build_document(run_dir, plugins.registry().presets)
    metrics = next(s for s in document.sections if s.title == "Metrics on the test split")
    said = " ".join(b.text for b in metrics.blocks if hasattr(b, "text"))
    assert "not meaningful for classes with fewer than 10 test images: NORMAL (4), PNEUMONIA (4)" in said
    per_class = next(
        b for b in metrics.blocks if getattr(b, "caption", "") == "Per class (support: test images)"
    )
    assert [row[-1] for row in per_class.rows] == ["4 (too few)", "4 (too few)"]


def test_a_patience_without_validation_images_is_said_to_stop_nothing(run_dir: Path) -> None:
    from breedscope.report.build import early_stopping_note

    assert early_stopping_note(5, {"NORMAL": 2}) is None
    assert early_stopping_note(None, {}) is None
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["counts"]["val"] = {"NORMAL": 0, "PNEUMONIA": 0}
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    summary = build_document(run_dir, plugins.registry().presets).sections[0]
    said = " ".join(b.text for b in summary.blocks if hasattr(b, "text"))
    assert "train.patience is 5, but the split has no validation images, so early stopping is off" in said


def test_the_study_comparison_says_when_a_class_figure_rests_on_one_image() -> None:
    from breedscope.report.build import comparison_section

    stored = json.loads((FIXTURE / "evaluation.json").read_text())
    # The bccd preset on the shared BCCD archive tests one basophil (issue 14's example).
    one = {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 1.0}
    many = {"precision": 0.9, "recall": 0.9, "f1-score": 0.9, "support": 30.0}
    stored["per_class"] = {"basophil": one, "neutrophil": many}
    section = comparison_section({"preset": "bccd"}, Evaluation.from_json(stored), plugins.registry().presets)
    rows = {row[0]: row for row in next(b for b in section.blocks if hasattr(b, "rows")).rows}
    assert rows["F1 basophil"][2] == "0.000 (on 1 test image: not meaningful)"
    assert rows["F1 neutrophil"][2] == "0.900"


EVIL = "<img src=x onerror=alert(1)>"


def _rename_class(run_dir: Path, old: str, new: str) -> None:
    """The run as if its class folder had been named ``new`` (every stored file says so)."""
    import hashlib

    for name in ("evaluation.json", "manifest.csv", "predictions.csv", "config.yaml"):
        file = run_dir / name
        file.write_text(
            file.read_text().replace(old, json.dumps(new)[1:-1] if name.endswith("json") else new)
        )
    header = json.loads((run_dir / "manifest.json").read_text().replace(old, new.replace('"', '\\"')))
    header["csv_sha256"] = hashlib.sha256((run_dir / "manifest.csv").read_bytes()).hexdigest()
    (run_dir / "manifest.json").write_text(json.dumps(header))


def test_markup_in_a_class_name_is_text_in_the_markdown_report_and_the_notebook(run_dir: Path) -> None:
    # A class folder named like an HTML element used to be written raw into report.md's tables.
    import breedscope as bs
    from breedscope.pipeline.render import render

    _rename_class(run_dir, "PNEUMONIA", EVIL)
    registry = plugins.registry()
    [report] = render(run_dir, [registry.pick("reporters", "markdown")], registry.presets)
    text = report.read_text()
    assert "<img" not in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text  # shown as the name it is
    assert "**" in text  # the document's own bold is kept

    shown = bs.open_run(run_dir)
    assert "<img" not in shown._repr_markdown_() and "<img src=x" not in shown._repr_html_()
    assert "&lt;img src=x onerror=alert(1)&gt;" in shown._repr_markdown_()


def test_markdown_text_keeps_bold_and_nothing_else() -> None:
    from breedscope.report.document import Paragraph, Table

    paragraph = Paragraph("Dataset **a|b[c](javascript:x)** and `code` <b>x</b> & more")
    assert paragraph.markdown() == (
        r"Dataset **a\|b[c\](javascript:x)** and \`code\` &lt;b&gt;x&lt;/b&gt; &amp; more"
    )
    [_, _, row] = Table(["class"], [["x|y\nz"]]).markdown_lines()
    assert row == r"| x\|y z |"


def test_one_support_rule_marks_small_classes_in_the_curves_the_terminal_and_the_notebook(
    finished_run: Path, tmp_path: Path
) -> None:
    # The basophil ROC curve (AUC 0.408) rested on one test image and was drawn like the others.
    import breedscope as bs
    from breedscope.report import figures

    evaluation = json.loads((finished_run / "evaluation.json").read_text())  # 3 test images a class
    evaluation["roc_curves"] = {c: {"fpr": [0, 1], "tpr": [0, 1], "auc": 0.5} for c in evaluation["classes"]}
    evaluation["roc_auc"] = 0.5
    figures.roc_one_vs_rest(Evaluation.from_json(evaluation), tmp_path / "roc.png")
    labels = figures.roc_labels(Evaluation.from_json(evaluation))
    assert labels == {c: f"{c} (0.500; 3 images: too few)" for c in evaluation["classes"]}

    shown = bs.open_run(finished_run)
    for text in (shown._repr_markdown_(), shown._repr_html_()):
        assert "Per-class figures are not meaningful for classes with fewer than 10 test images" in text
        assert "3 (too few)" in text


def _reproduction_results(reported: float, interval: tuple[float, float], images: int) -> dict:
    run = {"n_test": 348, "accuracy": 0.836, "accuracy_interval": list(interval), "macro_f1": 0.7}
    run["macro_f1_interval"] = [0.6, 0.8]
    return {
        "study": "bccd",
        "title": "White blood cells",
        "dataset": "bccd",
        "reported": {"accuracy": reported},
        "folds": 5,
        "repeats": 1,
        "runs": [
            {**run, "key": "sound", "protocol": "sound, one split", "n_test": 72},
            {**run, "key": "cv", "protocol": "sound, CV"},
            {**run, "key": "cv-faithful", "protocol": "per image, CV", "accuracy": 0.828},
        ],
        "effects": [
            {
                "difference": "split.grouped = False",
                "sound_accuracy": 0.836,
                "changed_accuracy": 0.828,
                "effect": -0.009,
                "interval": [-0.032, 0.014],
                "images": 348,
                "groups": 340,
            }
        ],
        "differences": [],
        "data": {
            "study": {"images": 3500, "test_images": 620, "classes": 5, "source": "Kaggle brikwerk/bccd"},
            "ours": {
                "images": images,
                "test_images": 72,
                "cv_test_images": 348,
                "classes": 5,
                "source": "archive",
            },
        },
    }


def test_the_reproduction_page_compares_the_data_and_says_when_the_paper_is_consistent(
    tmp_path: Path,
) -> None:
    # It used to say "does not explain the -0.1 points" of a paper figure inside our interval, and
    # "+13.9 points" without a word on the 351 images this archive holds against the study's 3,500.
    from breedscope.report.reproduction import build_page

    preset = plugins.registry().presets["bccd"]
    outside = build_page(tmp_path, _reproduction_results(0.948, (0.796, 0.874), 351), preset)
    text = " ".join(b.text for s in outside.sections for b in s.blocks if hasattr(b, "text"))
    assert "lies outside the sound cross-validated 95% interval (0.796 – 0.874), +11.2 points away" in text
    assert "the data differ too: the study had 3,500 images, these runs 351" in text
    data = next(
        b
        for s in outside.sections
        for b in s.blocks
        if getattr(b, "header", None) == ["", "the study", "these runs"]
    )
    assert data.rows[0] == ["images", "3,500", "351"]

    inside = build_page(tmp_path, _reproduction_results(0.84, (0.796, 0.874), 3500), preset)
    text = " ".join(b.text for s in inside.sections for b in s.blocks if hasattr(b, "text"))
    assert "consistent with the paper" in text and "does not explain" not in text
    assert "the data differ" not in text


def test_a_report_of_many_classes_scales_and_reads(tmp_path: Path) -> None:
    # At 150 classes the confusion-matrix figure alone took 6.5 GB (a cell of text per pair, and a
    # canvas growing with the classes); the tables ran to pages. Memory: benchmarks/many_classes.py.
    import numpy as np
    from PIL import Image

    from breedscope.evaluation.metrics import evaluate
    from breedscope.report import figures
    from breedscope.report.build import figures_sections, metrics_section

    classes = [f"class_{i:03d}" for i in range(150)]
    rng = np.random.default_rng(0)
    truth = np.repeat(np.arange(150), 4)
    probabilities = rng.dirichlet(np.ones(150) * 0.1, len(truth))
    probabilities[np.arange(len(truth)), truth] += 0.5 * (truth % 3 == 0)  # a third mostly right
    probabilities /= probabilities.sum(1, keepdims=True)
    evaluation = evaluate(truth, probabilities, classes, [str(i) for i in range(len(truth))])

    sections = figures_sections(tmp_path, evaluation, [])
    width, height = Image.open(tmp_path / "figures" / "confusion_matrix.png").size
    assert max(width, height) <= figures.MAX_SIDE_INCHES * figures.DPI + 1  # not 0.6 inch a class
    confusion = next(s for s in sections if s.title == "Confusion matrix")
    pairs = next(b for b in confusion.blocks if getattr(b, "caption", "") == "Most confused pairs")
    assert len(pairs.rows) == 15 and int(pairs.rows[0][2]) >= int(pairs.rows[-1][2])

    per_class = next(
        b for b in metrics_section(evaluation).blocks if "Per class" in getattr(b, "caption", "")
    )
    assert per_class.caption.endswith("worst F1 first") and per_class.header[0] == "#"
    f1 = [float(row[-2]) for row in per_class.rows]
    assert f1 == sorted(f1) and len(per_class.rows) == 150
    said = " ".join(b.text for b in metrics_section(evaluation).blocks if hasattr(b, "text"))
    assert "and 138 more (marked in the per-class table)" in said  # 12 named, not 150


def test_the_configuration_table_starts_with_the_dataset_its_source_and_the_command(tmp_path: Path) -> None:
    from breedscope.report.build import build_document

    run_dir = tmp_path / "run"
    shutil.copytree(FIXTURE, run_dir)
    document = build_document(run_dir, {})
    (section,) = [s for s in document.sections if s.title == "Configuration"]
    rows = dict(section.blocks[0].rows[:3])
    assert rows["dataset"] == "xray"
    assert rows["source"] == "Kaggle paultimothymooney/chest-xray-pneumonia/versions/2"
    assert rows["command"].startswith("breedscope run --dataset xray --preset chest_xray")

"""The command line: exit codes, one readable sentence per user error, examples in --help."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from breedscope.data import store
from tests.helpers import TINY, as_in_a_terminal, cli, cli_process, noise_image, shared_archive


def one_sentence_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert any(line.startswith("Error: ") for line in lines), result.stderr
    return " ".join(result.stderr.split())


def test_a_path_in_a_message_is_never_broken_across_lines(tmp_path: Path) -> None:
    # Users copy paths and commands out of messages: a narrow terminal must not fold them.
    missing = tmp_path / ("a-long-folder-name-" * 5) / "run"
    result = cli("run", "--resume", str(missing), env={"COLUMNS": "60"})
    assert result.returncode == 2
    assert f"Error: {missing} is not a folder" in result.stderr


def test_version_and_help_with_examples() -> None:
    assert cli("--version").stdout.startswith("breedscope ")
    help_text = cli("--help").stdout
    for command in ("fetch", "validate", "split", "run", "report", "datasets", "plugins"):
        assert command in help_text
        assert "Example" in cli(command, "--help").stdout


def _commands() -> list[list[str]]:
    from typer.main import get_command

    from breedscope.cli.app import app

    group = get_command(app)
    names = [[name] for name in group.commands if name != "augment"]
    return [*names, ["augment", "preview"]]


def test_help_at_80_columns_names_arguments_plainly_and_keeps_flags_typeless() -> None:
    for command in _commands():
        result = cli(*command, "--help", env={"COLUMNS": "80"})
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert max(len(line) for line in lines) <= 80, command
        assert "<bool>" not in result.stdout, command  # a flag takes no value
        usage = next(line for line in lines if "Usage:" in line)
        assert "{" not in usage and "}" not in usage, usage
    usage = next(line for line in cli("predict", "--help").stdout.splitlines() if "Usage:" in line)
    assert "predict [OPTIONS] RUN_DIR IMAGES..." in usage
    assert "Missing argument 'RUN_DIR'." in cli("predict").stderr


def test_run_help_at_80_columns_leaves_most_of_the_width_to_the_help_text() -> None:
    lines = cli("run", "--help", env={"COLUMNS": "80"}).stdout.splitlines()
    # A flag pair is one entry over two lines, not two columns widening every row.
    pair = next(i for i, line in enumerate(lines) if "--feature-cache /" in line)
    assert "--no-feature-cache" in lines[pair + 1]
    dataset = next(line for line in lines if line.startswith("│ --dataset "))
    assert dataset.index("Dataset name") <= 40  # was 56: the option column took 46 of 80


def test_a_flag_pair_still_parses_both_ways_after_help_was_shown() -> None:
    from typer.main import get_command

    from breedscope.cli.app import app

    run = get_command(app).commands["run"]
    assert cli("run", "--help").returncode == 0
    cache = next(p for p in run.params if p.name == "feature_cache")
    assert cache.opts == ["--feature-cache"] and cache.secondary_opts == ["--no-feature-cache"]


def test_unknown_dataset_suggests_the_close_match() -> None:
    text = one_sentence_error(cli("run", "--dataset", "bcdd"))
    assert "dataset.name: unknown dataset 'bcdd'. Did you mean 'bccd'?" in text


def test_bad_ratios_and_epochs_name_the_field() -> None:
    assert "split: split ratios" in one_sentence_error(cli("run", "--split", "0.8,0.3,0.2"))
    assert "train.epochs" in one_sentence_error(cli("run", "--epochs", "0"))


def test_folder_fetch_needs_from() -> None:
    assert "--from PATH" in one_sentence_error(cli("fetch", "folder"))


def test_fetch_folder_then_split_then_validate(tmp_path: Path) -> None:
    for label in ("ant", "bee"):
        (tmp_path / "bugs" / label).mkdir(parents=True)
        for i in range(10):
            noise_image(hash((label, i)) % 10_000, 40).save(tmp_path / "bugs" / label / f"{i}.png")
    (tmp_path / "bugs" / "bee" / "broken.png").write_bytes(b"nope")
    fetched = cli("fetch", "folder", "--from", str(tmp_path / "bugs"), "--name", "bugs")
    assert fetched.returncode == 0, fetched.stderr
    assert "Stored bugs: 20 images" in " ".join(fetched.stderr.split())
    assert "not an image" in fetched.stdout
    again = cli("fetch", "folder", "--from", str(tmp_path / "bugs"), "--name", "bugs")
    assert "already fetched" in again.stderr
    split = cli("split", "bugs", "--split", "0.6,0.2,0.2", "--output", str(tmp_path / "m"))
    assert split.returncode == 0, split.stderr
    assert (tmp_path / "m" / "manifest.csv").read_text().count("\n") == 21
    assert cli("validate", "bugs").returncode == 0
    assert "bugs" in cli("datasets").stdout


@pytest.mark.parametrize(
    "command", [("report",), ("export",), ("predict", "an.jpg"), ("evaluate", "--dataset", "demo")]
)
def test_a_command_on_a_folder_that_is_not_a_finished_run_says_which_it_is(
    command: tuple[str, ...], tmp_path: Path
) -> None:
    # A folder breedscope never wrote has no status.json to look at: say it is not a run at all.
    stranger = tmp_path / "holiday-photos"
    stranger.mkdir()
    name, *rest = command
    text = one_sentence_error(cli(name, str(stranger), *rest))
    assert f"{stranger} is not a breedscope run directory" in text
    # A run that stopped half-way says so, and in which state it stopped.
    half = tmp_path / "runs" / "demo" / "run"
    half.mkdir(parents=True)
    (half / "config.yaml").write_text("seed: 0\n")
    (half / "status.json").write_text('{"state": "interrupted"}\n')
    text = one_sentence_error(cli(name, str(half), *rest))
    assert (
        f"the run did not finish (status: interrupted). Continue it with: breedscope run --resume {half}"
        in text
    )


@pytest.mark.parametrize("args", [("run", "--preset", "cats_study"), ("run", "--augment", "sparkles")])
def test_unknown_names_list_the_known_ones(args: tuple[str, ...], tmp_path: Path) -> None:
    text = one_sentence_error(cli(*args, "--dataset", "demo", "--epochs", "1", "--runs-dir", str(tmp_path)))
    assert "Known:" in text or "Installed:" in text
    assert not list(tmp_path.iterdir())  # refused before any run directory was made


def test_a_full_disk_is_one_sentence_and_keeps_finished_work(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import errno

    from breedscope import cli as cli_module
    from breedscope.pipeline import run as pipeline

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "/data/runs/demo/run/model.keras")

    monkeypatch.setattr(pipeline, "run", full_disk)
    monkeypatch.setattr(sys, "argv", ["breedscope", "run", "--dataset", "demo"])
    with pytest.raises(SystemExit) as exited:
        cli_module.main()
    assert exited.value.code == 2
    text = " ".join(capsys.readouterr().err.split())
    assert text.startswith(
        "Error: No space left on device at /data/runs/demo/run/model.keras: free some space"
    )
    assert "--resume continues a run" in text


def test_the_cli_needs_no_package_outside_its_dependencies() -> None:
    # typer vendors click; a stray `import click` works in a dev environment (mkdocs brings
    # click) and breaks a user's plain install. Block it and start the CLI.
    code = (
        "import sys; sys.modules['click'] = None; from breedscope.cli import main; "
        "sys.argv = ['breedscope', '--version']; main()"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("breedscope ")


# --- Ctrl-C and the inputs that used to end in a traceback ---------------------------------

OFFLINE = {"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": ""}


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl_c", "sigterm"])
def test_a_stopped_fetch_exits_with_the_signals_code_and_stores_nothing(home: Path, signum: int) -> None:
    archive = shared_archive("chest-xray-pneumonia.zip")
    process = subprocess.Popen(
        [sys.executable, "-m", "breedscope.cli", "fetch", "chest_xray", "--from", str(archive)],
        preexec_fn=as_in_a_terminal,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list((home / "datasets").glob(".chest_xray.staging/raw")):
        time.sleep(0.02)
    time.sleep(0.5)  # into extraction or validation
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signum, err
    assert "Traceback" not in err
    assert "Interrupted; nothing was stored for 'chest_xray'" in " ".join(err.split())
    assert store.load("chest_xray") is None
    assert not list((home / "datasets").glob(".chest_xray*"))


def test_a_yaml_config_that_is_a_list_is_one_sentence(tmp_path: Path) -> None:
    (tmp_path / "study.yaml").write_text("- train\n- model\n")
    text = one_sentence_error(cli("run", "--config", str(tmp_path / "study.yaml")))
    assert "holds a list at its top level" in text


def test_a_config_that_is_not_utf8_is_one_sentence(tmp_path: Path) -> None:
    (tmp_path / "study.toml").write_bytes("[train]\nepochs = 3 # \xe9poques\n".encode("latin-1"))
    assert "is not UTF-8 text" in one_sentence_error(cli("run", "--config", str(tmp_path / "study.toml")))


def test_runs_dir_that_is_a_file_is_one_sentence(tmp_path: Path) -> None:
    (tmp_path / "runs").write_text("not a folder")
    text = one_sentence_error(cli("run", "--dataset", "demo", "--runs-dir", str(tmp_path / "runs")))
    assert "is a file" in text and "--runs-dir" in text


@pytest.mark.parametrize("weights", ["missing", "not_weights"])
def test_bad_weights_are_refused_before_a_run_directory_exists(weights: str, tmp_path: Path) -> None:
    path = tmp_path / "weights.h5"
    if weights == "not_weights":
        path.write_text("this is a text file")
    runs = tmp_path / "runs"
    text = one_sentence_error(
        cli("run", "--dataset", "demo", "--weights", str(path), "--runs-dir", str(runs))
    )
    assert ("does not exist" if weights == "missing" else "could not be loaded into mobilenet_v2") in text
    assert not runs.exists()


def test_imagenet_weights_out_of_reach_are_refused_before_a_run_directory_exists(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    env = {**OFFLINE, "KERAS_HOME": str(tmp_path / "empty_keras_home")}
    text = one_sentence_error(
        cli(
            "run",
            "--dataset",
            "demo",
            "--backbone",
            "resnet50",
            "--weights",
            "imagenet",
            "--runs-dir",
            str(runs),
            env=env,
        )
    )
    assert "could not be downloaded" in text and "--weights PATH" in text
    assert not runs.exists()


@pytest.mark.parametrize("token", ["", "a-token"])
def test_kaggle_offline_is_one_sentence_with_the_way_out(token: str, tmp_path: Path) -> None:
    # Public datasets need no credentials, so without a network the sentence is about the network.
    env = {**OFFLINE, "KAGGLE_API_TOKEN": token, "KAGGLE_CONFIG_DIR": str(tmp_path), "HOME": str(tmp_path)}
    text = one_sentence_error(cli("fetch", "bccd", env={**env, "KAGGLEHUB_CACHE": str(tmp_path / "kh")}))
    assert "from Kaggle failed" in text and "check the network" in text
    assert (
        "https://www.kaggle.com/datasets/brikwerk/bccd-white-blood-cell and pass the archive with --from"
        in text
    )


# What a CPU user cannot act on: TensorFlow's native start-up lines, the cuInit error, the
# converter's TensorSpec dump, TFLite's delegate announcement, Python warnings from libraries.
NOISE = re.compile(
    r"^[IWEF]\d{4} |absl::InitializeLog|cuInit|oneDNN|cuda drivers|TensorSpec\(|XNNPACK|Warning:|"
    r"replica\(s\)|_DefaultDistributionStrategy"
)


@pytest.mark.whole_run
def test_a_run_and_an_export_print_only_what_a_user_can_act_on(tree_dataset_cli, tmp_path: Path) -> None:
    env = {"TF_CPP_MIN_LOG_LEVEL": ""}  # as a user's shell has it
    runs = tmp_path / "runs"
    run = cli_process(
        "run", "--dataset", tree_dataset_cli, *TINY, "--epochs", "1", "--runs-dir", str(runs), env=env
    )
    assert run.returncode == 0, run.stderr
    (run_dir,) = list((runs / tree_dataset_cli).iterdir())
    exported = cli_process("export", str(run_dir), "--format", "tflite", env=env)
    assert exported.returncode == 0, exported.stderr

    lines = [line for r in (run, exported) for line in (r.stdout + r.stderr).splitlines() if line.strip()]
    assert [line for line in lines if NOISE.search(line)] == []
    assert any(line.startswith("Test accuracy") for line in lines)
    assert any(line.startswith("Exported:") for line in lines)

    # The same export with --debug shows what was silenced (so the test above can fail).
    debug = cli_process("--debug", "export", str(run_dir), "--format", "tflite", env=env)
    assert debug.returncode == 0
    if not any(NOISE.search(line) for line in (debug.stdout + debug.stderr).splitlines()):
        pytest.skip("this TensorFlow build prints nothing at start-up, so there is nothing to silence")


@pytest.fixture
def tree_dataset_cli(make_tree) -> str:
    assert (
        cli(
            "fetch", "folder", "--from", str(make_tree(classes=3, per_class=10, size=40)), "--name", "shapes"
        ).returncode
        == 0
    )
    return "shapes"


def test_datasets_at_80_columns_wraps_between_tokens_instead_of_cutting() -> None:
    from breedscope.core.tables import pieces

    result = cli("datasets", env={"COLUMNS": "80"})
    assert result.returncode == 0, result.stderr
    assert "…" not in result.stdout and max(len(line) for line in result.stdout.splitlines()) <= 80
    # Never inside a token: each part of a slug between its separators is on one line, whole.
    for piece in pieces("brikwerk/bccd-white-blood-cell paultimothymooney/chest-xray-pneumonia"):
        assert piece.strip() in result.stdout, piece
    # The Kaggle column, read down: every slug is there whole, folded over lines, with its version.
    kaggle = "".join(
        line.split("│")[3].strip() for line in result.stdout.splitlines() if line.count("│") == 6
    )
    assert "paultimothymooney/chest-xray-pneumonia(version2)" in "".join(kaggle.split())


@pytest.mark.parametrize("args", [["datasets"], ["--version"]], ids=["table", "version"])
def test_output_whose_reader_has_gone_ends_quietly_with_sigpipes_exit_code(args: list[str]) -> None:
    # `breedscope predict RUN images --json | head -1`: the reader may leave before the command
    # writes. Nothing is said (there is nobody to say it to, and stderr may be the same pipe) and
    # the exit code is a broken pipe's, 141, not 1 for a fault of breedscope's own.
    import os

    reader, writer = os.pipe()
    process = subprocess.Popen(
        [sys.executable, "-m", "breedscope.cli", *args], stdout=writer, stderr=subprocess.PIPE, text=True
    )
    os.close(writer)
    os.close(reader)  # gone before the command writes
    _, err = process.communicate(timeout=120)
    assert (process.returncode, err) == (128 + signal.SIGPIPE, "")

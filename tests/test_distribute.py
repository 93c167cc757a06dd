"""Distribution (training/distribute.py): two logical CPUs, workers on loopback, what a cluster refuses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from breedscope.config import layering
from tests.helpers import (
    TINY,
    as_in_a_terminal,
    cli,
    cli_process,
    run_dir_of,
)

pytestmark = pytest.mark.whole_run


def test_mirrored_strategy_across_two_logical_cpus(tree_dataset: str, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    result = cli_process(
        "run",
        "--dataset",
        tree_dataset,
        *TINY,
        "--epochs",
        "2",
        "--strategy",
        "mirrored",
        "--no-feature-cache",
        "--runs-dir",
        str(runs),
        env={"BREEDSCOPE_LOGICAL_CPUS": "2"},
    )
    assert result.returncode == 0, result.stderr
    assert "Training on 2 replicas (MirroredStrategy)" in result.stderr
    evaluation = json.loads((run_dir_of(runs) / "evaluation.json").read_text())
    assert evaluation["training"]["replicas"] == 2


def free_ports(count: int) -> list[int]:
    """Ports no one listens on now (bound, then released, by this process)."""
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@contextmanager
def workers_on_loopback(
    args: list[str], runs: list[Path], envs: list[dict]
) -> Iterator[list[subprocess.Popen]]:
    """``breedscope run ARGS --strategy multiworker`` once per worker of a cluster on free 127.0.0.1
    ports (worker ``i`` writes to ``runs[i]``, with ``envs[i]`` added to its environment); every
    worker is killed on the way out."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(len(runs))]}
    workers: list[subprocess.Popen] = []
    try:
        for index, (runs_dir, extra) in enumerate(zip(runs, envs, strict=True)):
            config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
            command = [sys.executable, "-m", "breedscope.cli", "run", *args, "--strategy", "multiworker"]
            env = {**os.environ, "COLUMNS": "200", "TF_CONFIG": json.dumps(config), **extra}
            command += ["--runs-dir", str(runs_dir)]
            workers.append(subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True))
        yield workers
    finally:
        for worker in workers:
            worker.kill()


def test_two_workers_on_loopback_train_what_one_machine_trains(tree_dataset: str, tmp_path: Path) -> None:
    # Keras' model.fit cannot drive several workers (keras-team/keras#20585); the custom loop
    # does. Two workers sharing one cache train the head, then fine-tune, in step: the chief's
    # run must equal a one-machine run of the same settings (dropout off: its masks are drawn
    # per replica), and the other worker must leave no files behind.
    (tmp_path / "no-dropout.yaml").write_text("model: {dropout: 0}\n")
    settings = [*TINY, "--config", str(tmp_path / "no-dropout.yaml"), "--epochs", "3"]
    # Large steps, so that a wrong gradient would show in the losses; fine-tuning trains on images.
    settings += ["--lr", "0.1", "--fine-tune-epochs", "1", "--fine-tune-layers", "5"]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    runs = [tmp_path / "runs-0", tmp_path / "runs-1"]
    with workers_on_loopback(
        ["--dataset", tree_dataset, *settings], runs, [{"TMPDIR": str(scratch)}] * 2
    ) as workers:
        said = [worker.communicate(timeout=300)[1] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], said
    assert "Trained in step with the chief" in said[1]
    assert not (tmp_path / "runs-1").exists() and not any(scratch.iterdir())
    chief = run_dir_of(tmp_path / "runs-0")
    training = json.loads((chief / "evaluation.json").read_text())["training"]
    assert training["strategy"] == "multiworker" and training["replicas"] == 2

    one_dir = tmp_path / "one"
    alone = cli("run", "--dataset", tree_dataset, *settings, "--strategy", "one", "--runs-dir", str(one_dir))
    assert alone.returncode == 0, alone.stderr
    one = run_dir_of(one_dir)
    for name in ("history.csv", "predictions.csv"):
        ours, theirs = (np.genfromtxt(d / name, delimiter=",", skip_header=1) for d in (chief, one))
        numbers = ~np.isnan(theirs)  # the path and label columns
        np.testing.assert_allclose(ours[numbers], theirs[numbers], rtol=1e-5, atol=1e-6, err_msg=name)


def test_ctrl_c_while_waiting_for_the_other_workers_exits_130_naming_them(
    tree_dataset: str, tmp_path: Path
) -> None:
    # TensorFlow's own wait for the cluster ignores Ctrl-C; breedscope waits first, in Python.
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    config = {"cluster": cluster, "task": {"type": "worker", "index": 0}}
    runs = tmp_path / "runs"
    flags = ["--strategy", "multiworker", "--runs-dir", str(runs)]
    said = tmp_path / "stderr.txt"
    with said.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "breedscope.cli", "run", "--dataset", tree_dataset, *TINY, *flags],
            preexec_fn=as_in_a_terminal,
            stderr=stderr,
            env={**os.environ, "TF_CONFIG": json.dumps(config), "BREEDSCOPE_CLUSTER_NOTICE_SECONDS": "1"},
        )
        try:
            deadline = time.monotonic() + 120
            while "Still waiting" not in said.read_text() and time.monotonic() < deadline:
                time.sleep(0.1)
            process.send_signal(signal.SIGINT)
            process.wait(timeout=60)
        finally:
            process.kill()
    err = said.read_text()
    assert process.returncode == 130, err
    assert f"Still waiting for {cluster['worker'][1]}" in err and not runs.exists()


def test_a_worker_lost_mid_training_stops_the_others_in_one_sentence(
    tree_dataset: str, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    args = ["--dataset", tree_dataset, *TINY, "--epochs", "100000", "--patience", "100000"]
    # The killed worker's scratch cannot be cleaned up: it goes in this test's folder.
    env = {"TF_CPP_MIN_LOG_LEVEL": "3", "TMPDIR": str(tmp_path)}
    with workers_on_loopback(args, [runs, tmp_path / "other"], [env, env]) as workers:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and workers[0].poll() is None:
            states = list(runs.glob("shapes/*/checkpoints/state.json"))
            if states and json.loads(states[0].read_text())["next_epoch"] >= 2:
                break
            time.sleep(0.05)
        workers[1].kill()
        _, said = workers[0].communicate(timeout=120)
    assert workers[0].returncode == 2, said
    assert "A worker of the cluster stopped or cannot be reached" in " ".join(said.split())
    assert json.loads((run_dir_of(runs) / "status.json").read_text())["state"] == "failed"


def test_a_multiworker_run_is_not_resumed_and_a_reproduction_is_not_distributed(tmp_path: Path) -> None:
    # Only the chief keeps checkpoints, so the other workers could not resume in step; and a
    # reproduction runs its members one after another on one machine. Both say so up front.
    from breedscope import plugins
    from breedscope.core.errors import ConfigError
    from breedscope.pipeline import reproduction
    from breedscope.pipeline import run as pipeline

    registry = plugins.registry()
    config = layering.resolve_config(registry, dataset="demo", strategy="multiworker")
    with pytest.raises(ConfigError, match="cannot be resumed; start the run again on every machine"):
        pipeline.run(config, registry, run_dir=tmp_path / "killed")
    with pytest.raises(ConfigError, match="drop --strategy multiworker"):
        reproduction.start(registry, "bccd", strategy="multiworker", runs_dir=str(tmp_path / "runs"))
    assert not any(tmp_path.iterdir())


def test_workers_with_different_datasets_are_refused_in_one_sentence(
    tree_dataset: str, make_tree, tmp_path: Path
) -> None:
    # Each machine builds its manifest from its own copy of the dataset; copies that differ
    # would train every worker on different images, silently.
    other_home = tmp_path / "other-home"
    smaller = make_tree(classes=3, per_class=12, size=40, root=tmp_path / "smaller")
    env = {"BREEDSCOPE_HOME": str(other_home)}
    assert cli("fetch", "folder", "--from", str(smaller), "--name", tree_dataset, env=env).returncode == 0
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    runs = [tmp_path / "runs-0", tmp_path / "runs-1"]
    homes = [os.environ["BREEDSCOPE_HOME"], str(other_home)]
    envs = [{"BREEDSCOPE_HOME": home, "TMPDIR": str(scratch)} for home in homes]
    with workers_on_loopback(["--dataset", tree_dataset, *TINY], runs, envs) as workers:
        said = [worker.communicate(timeout=300)[1] for worker in workers]
    assert [worker.returncode for worker in workers] == [2, 2], said
    assert all("their manifests differ" in " ".join(text.split()) for text in said)
    assert not any(scratch.iterdir()), "a refused worker left its scratch directory"
    assert json.loads((run_dir_of(tmp_path / "runs-0") / "status.json").read_text())["state"] == "failed"


@pytest.mark.parametrize(
    "tf_config",
    [
        None,
        "not json",
        '{"cluster": {"worker": ["a:1"]}}',  # no task
        '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}',  # no such worker
        '{"cluster": {"worker": ["a"]}, "task": {"type": "worker", "index": 0}}',  # no port
        '{"cluster": {"worker": ["a:1"], "ps": ["b:2"]}, "task": {"type": "ps", "index": 0}}',  # a ps task
    ],
)
def test_multiworker_without_a_sound_tf_config_is_refused_in_one_sentence(
    tf_config: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from breedscope.core.errors import ConfigError
    from breedscope.training import distribute

    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(ConfigError, match="multiworker needs TF_CONFIG set on every machine"):
        distribute.strategy("multiworker")


def test_the_rendezvous_waits_for_the_other_trainers_only() -> None:
    # An evaluator (or a ps) in TF_CONFIG does not join the training's collectives: a worker
    # waiting for one would wait forever.
    import socket
    import threading

    from breedscope.training import distribute

    with socket.create_server(("127.0.0.1", 0)) as other_worker:
        with socket.create_server(("127.0.0.1", 0)) as probe:
            mine = probe.getsockname()[1]  # free once closed
        other = other_worker.getsockname()[1]
        cluster = {"worker": [f"127.0.0.1:{mine}", f"127.0.0.1:{other}"], "evaluator": ["127.0.0.1:9"]}
        waiting = threading.Thread(target=distribute.wait_for_peers, args=(cluster, "worker:0"), daemon=True)
        waiting.start()
        waiting.join(timeout=10)
    assert not waiting.is_alive(), "still waiting, for the evaluator"

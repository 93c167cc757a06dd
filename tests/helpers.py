"""Helpers the tests share: paths of the shared real data, image makers, the CLI in a subprocess.

Imported by tests and by ``conftest.py`` (which holds only fixtures), never the other way round.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from queue import Empty
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from PIL import Image

if TYPE_CHECKING:
    from nbclient import NotebookClient
    from nbformat import NotebookNode

# A small, fast run: a from-scratch MobileNetV2 at 32 px (alpha 0.35), no downloads; as CLI flags
# and as Python API settings.
TINY = [
    "--weights",
    "none",
    "--alpha",
    "0.35",
    "--image-size",
    "32",
    "--augment",
    "light",
    "--views",
    "2",
    "--split",
    "0.6,0.2,0.2",
    "--batch-size",
    "8",
]
TINY_SETTINGS = {
    "weights": "none",
    "alpha": 0.35,
    "image_size": 32,
    "augment": "light",
    "views": 2,
    "split": {"train": 0.6, "val": 0.2, "test": 0.2},
    "batch_size": 8,
}

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
DATASETS = SHARED / "datasets"
WEIGHTS = SHARED / "weights" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"


def shared_archive(name: str) -> Path:
    path = DATASETS / name
    if not path.is_file():
        pytest.skip(f"real data {path} is absent (it sits in ../shared/datasets beside the repository in CI)")
    return path


def made_once(tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[Path], None]) -> Path:
    """A folder ``make`` fills once per test session, shared by pytest-xdist's workers: the first
    to ask makes it under a lock, the others wait and reuse it. Tests only read it; a test that
    changes what it holds works on a copy."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    # The workers' temporary folders sit in one folder of this session; without xdist, use ours.
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder, done = root / name, root / f"{name}.done"
    with FileLock(str(root / f"{name}.lock")):
        if not done.is_file():
            shutil.rmtree(folder, ignore_errors=True)  # what a failed attempt left
            folder.mkdir()
            make(folder)
            done.touch()
    return folder


def require_weights() -> None:
    """Skip, with the reason, where the shared ImageNet weights are absent (the worker's
    KERAS_HOME holds them where they are present: tests/conftest.py)."""
    if not WEIGHTS.is_file():
        pytest.skip(f"ImageNet weights {WEIGHTS} are absent (they sit in ../shared/weights in CI)")


def keras_home_at(path: Path) -> Path:
    """A KERAS_HOME at ``path`` holding the shared ImageNet MobileNetV2 weights, as a user's cache
    would."""
    if not WEIGHTS.is_file():
        pytest.skip(f"ImageNet weights {WEIGHTS} are absent (they sit in ../shared/weights in CI)")
    (path / "models").mkdir(parents=True, exist_ok=True)
    shutil.copy(WEIGHTS, path / "models" / WEIGHTS.name)
    return path


def write_tree(root: Path, classes: int, per_class: int, size: int) -> Path:
    """A ``class_N/img_NNN.png`` tree of learnable shapes (the same images for the same arguments)."""
    for label in range(classes):
        folder = root / f"class_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            shape_image(label, seed=label * 1000 + index, size=size).save(folder / f"img_{index:03d}.png")
    return root


def noise_image(seed: int, size: int = 48, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    array = rng.integers(0, 256, size=(size, size, channels), dtype=np.uint8)
    return Image.fromarray(array.squeeze() if channels == 1 else array, mode=mode)


def shape_image(label: int, seed: int, size: int = 48) -> Image.Image:
    """A learnable picture: class 0 is a bright square, class 1 a bright horizontal bar, etc."""
    rng = np.random.default_rng(seed)
    array = rng.integers(0, 60, size=(size, size, 3), dtype=np.uint8)
    offset = int(rng.integers(2, 8))
    if label == 0:
        array[offset : offset + size // 2, offset : offset + size // 2] = 230
    elif label == 1:
        array[size // 2 - 4 : size // 2 + 4, :] = 230
    else:
        array[:, size // 2 - 4 : size // 2 + 4] = 230
    return Image.fromarray(array)


def cli_process(*args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """The CLI in a process of its own, as a user's shell starts it: for what only a process shows
    (signals, locks held by another process, plugins found at start-up, TensorFlow's native
    output, KERAS_HOME read when Keras is imported)."""
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "breedscope.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )


# The KERAS_HOME every worker's Keras was imported with (tests/conftest.py sets it first).
SESSION_KERAS_HOME = "BREEDSCOPE_TEST_KERAS_HOME"


def cli(*args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """The CLI run in this test's own process with ``env`` set for the call, returned as
    :func:`cli_process` returns it: files, exit codes and sentences need no process of their own,
    and each worker then imports TensorFlow once instead of once per command. A call whose
    KERAS_HOME differs from the one Keras was imported with (Keras reads it once) gets a process
    of its own."""
    del timeout  # a process's bound; in this process, pytest's own
    overrides = {"COLUMNS": "200", **(env or {})}
    wanted = overrides.get("KERAS_HOME", os.environ.get("KERAS_HOME"))
    if wanted != os.environ.get(SESSION_KERAS_HOME):
        return cli_process(*args, env=env)
    return cli_here(*args, env=overrides)


@contextmanager
def environment(overrides: dict[str, str]) -> Iterator[None]:
    """``os.environ`` with ``overrides`` for the length of the block."""
    saved = {key: os.environ.get(key) for key in overrides}
    os.environ.update(overrides)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def cli_here(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The CLI run in this test's own process (``breedscope.cli.execute``), as :func:`cli_process`
    returns it."""
    from breedscope.cli import execute
    from breedscope.cli.app import out as results
    from breedscope.core.progress import console as messages

    # A console reads COLUMNS once, when it is made (at the first import, in whichever test that
    # was): give both the width a process started with this environment would have.
    columns = {**os.environ, **(env or {})}.get("COLUMNS", "80")
    results.width = messages.width = int(columns) if columns.isdigit() else 80
    out, err = io.StringIO(), io.StringIO()
    with environment(env or {}), redirect_stdout(out), redirect_stderr(err):
        code = execute(list(args))
    return subprocess.CompletedProcess(["breedscope", *args], code, out.getvalue(), err.getvalue())


def cli_in_a_terminal(*args: str, timeout: int = 120) -> tuple[int, str]:
    """The CLI with a pseudo-terminal as its stdout and stderr, as a user's shell runs it (progress
    bars show); its exit code and what it wrote. For commands that write little: the terminal's
    buffer is read once the command has ended."""
    import pty

    reader, writer = pty.openpty()
    process = subprocess.run(
        [sys.executable, "-m", "breedscope.cli", *args],
        stdin=subprocess.DEVNULL,
        stdout=writer,
        stderr=writer,
        env={**os.environ, "COLUMNS": "200"},
        timeout=timeout,
    )
    os.close(writer)
    written = b""
    while True:
        try:
            chunk = os.read(reader, 65536)
        except OSError:  # Linux: the terminal is closed at its other end
            break
        if not chunk:
            break
        written += chunk
    os.close(reader)
    return process.returncode, written.decode("utf-8", "replace")


def pip_install_apart(target: Path, *requirements: str) -> subprocess.CompletedProcess:
    """Install ``requirements`` (without their dependencies) into the folder ``target``, apart from
    the test environment, as ``PYTHONPATH`` will make them visible to a subprocess."""
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
    return subprocess.run(
        [*command, "--target", str(target), *requirements], capture_output=True, text=True, timeout=300
    )


def as_in_a_terminal() -> None:
    """``preexec_fn`` for a CLI a test will Ctrl-C: SIGINT as a terminal delivers it. A shell
    that started the test suite in the background (``pytest ... &``) has its children ignore
    SIGINT, and Python then installs no KeyboardInterrupt handler at all."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# Without a validation split there is no early stopping and no best-epoch restore.
TINY_NO_VAL = [a if a != "0.6,0.2,0.2" else "0.7,0,0.3" for a in TINY]


def history_epochs(run_dir: Path) -> list[int]:
    """The epoch column of a run's history.csv."""
    return [int(float(line.split(",")[0])) for line in (run_dir / "history.csv").read_text().splitlines()[1:]]


def tensorboard_steps(run_dir: Path, split: str, tag: str) -> list[int]:
    """The steps (epochs from 0) at which a run's TensorBoard logs hold ``tag``."""
    import tensorflow as tf

    steps = []
    for file in sorted((run_dir / "tensorboard" / split).glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(file)):
            steps += [event.step for value in event.summary.value if value.tag == tag]
    return sorted(steps)


def run_dir_of(runs: Path) -> Path:
    (found,) = [p for p in (runs / "shapes").iterdir()]
    return found


def notebook_client(notebook: NotebookNode, **settings: Any) -> NotebookClient:
    """nbclient's client for ``notebook`` (``settings`` as NotebookClient takes them), its kernel
    replies read at least once a second.

    nbclient reads the kernel's replies with zmq's asyncio sockets, woken by the socket's
    edge-triggered file descriptor. The shell socket also sends (nbclient answers the progress
    widgets' comm messages on it), and a send can consume the wake-up of a reply that has just
    arrived (pyzmq #1203): the reply then waits in the socket until the cell's timeout, when zmq
    looks once more, and the cell ends "successfully" ten minutes late. Measured 2026-12-07 with
    100 cells of a rich progress bar: with nbclient's own client a cell waited its whole timeout
    in 3 runs of 3; read in 1-s slices, 22 replies in 8 runs were late, each by 1.0 s. Jupyter's
    own front ends do not use this client: the harness's workaround, not breedscope's."""
    from time import monotonic

    from jupyter_client.asynchronous import AsyncKernelClient
    from jupyter_client.channels import AsyncZMQSocketChannel
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient
    from traitlets import Type

    class SlicedChannel(AsyncZMQSocketChannel):
        async def get_msg(self, timeout: float | None = None) -> dict:
            deadline = None if timeout is None else monotonic() + timeout
            while True:
                wait = 1.0 if deadline is None else min(1.0, max(0.0, deadline - monotonic()))
                try:
                    return await super().get_msg(timeout=wait)
                except Empty:
                    if deadline is not None and monotonic() >= deadline:
                        raise

    class SlicedClient(AsyncKernelClient):
        shell_channel_class = Type(SlicedChannel)
        iopub_channel_class = Type(SlicedChannel)

    class SlicedManager(AsyncKernelManager):
        client_factory = Type(SlicedClient)

    return NotebookClient(notebook, kernel_manager_class=SlicedManager, **settings)

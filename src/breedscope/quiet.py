"""Keeping TensorFlow's and TFLite's lines a CPU user cannot act on out of the terminal.

TensorFlow prints from C++ as its libraries load (``oneDNN custom operations are on``, ``Could
not find cuda drivers``), before any setting such as ``TF_CPP_MIN_LOG_LEVEL`` is read, and
``failed call to cuInit`` when it first looks for a GPU; the TFLite converter prints a page of
``TensorSpec(...)``; the TFLite interpreter announces its XNNPACK delegate. Those moments are
silenced here, at the level of the process's file descriptors (the only level native code
writes to), and nowhere else: errors still surface as Python exceptions, and
``BREEDSCOPE_DEBUG=1`` (``breedscope --debug``) shows everything.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from functools import cache

DEBUG_ENV = "BREEDSCOPE_DEBUG"


def debugging() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


@contextmanager
def native_output_silenced() -> Iterator[None]:
    """Send what native code and Python print to stdout and stderr nowhere, for the block."""
    if debugging():
        yield
        return
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            os.dup2(null.fileno(), 2)
            # Python-level prints too: in a notebook sys.stdout is not file descriptor 1.
            with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
                yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for descriptor in saved:
            os.close(descriptor)


@cache
def load_tensorflow() -> None:
    """Import TensorFlow and Keras and look for GPUs, once per process, quietly. Called where a
    command first needs TensorFlow (training, loading a model), so later imports are silent.

    Its C++ log is kept to errors for the rest of the process (unless the user chose a level):
    the CLI sets this at start, and a notebook would otherwise show lines such as
    ``generator_dataset_op.cc] Memory patch applied`` in the middle of a run."""
    if not debugging():
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with native_output_silenced():
        import keras  # noqa: F401
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")

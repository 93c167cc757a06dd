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
import logging
import os
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from functools import cache

DEBUG_ENV = "BREEDSCOPE_DEBUG"


def debugging() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


@contextmanager
def _descriptors_to_devnull() -> Iterator[dict[int, int]]:
    """Point file descriptors 1 and 2 at ``/dev/null`` for the block, and yield copies of the
    originals (by descriptor) that stay open until they are restored afterwards."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = {1: os.dup(1), 2: os.dup(2)}
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            os.dup2(null.fileno(), 2)
        yield saved
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        for descriptor, copy in saved.items():
            os.dup2(copy, descriptor)
            os.close(copy)


@contextmanager
def native_output_silenced() -> Iterator[None]:
    """Send what native code and Python print to stdout and stderr nowhere, for the block."""
    if debugging():
        yield
        return
    # Python-level prints too: in a notebook sys.stdout is not file descriptor 1. And TensorFlow's
    # Python log ("INFO:tensorflow:Assets written to: ..."), whose handler holds the stream it
    # was made with, which neither redirection reaches.
    with (
        _descriptors_to_devnull(),
        redirect_stdout(io.StringIO()),
        redirect_stderr(io.StringIO()),
        _loggers_at_errors("tensorflow", "absl"),
    ):
        yield


@contextmanager
def _loggers_at_errors(*names: str) -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _import_tensorflow() -> None:
    import keras  # noqa: F401
    import tensorflow as tf

    tf.config.list_physical_devices("GPU")


def _quiet_log_level() -> None:
    if not debugging():
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@cache
def load_tensorflow() -> None:
    """Import TensorFlow and Keras and look for GPUs, once per process, quietly. Called where a
    command first needs TensorFlow (training, loading a model), so later imports are silent.

    Its C++ log is kept to errors for the rest of the process (unless the user chose a level):
    the CLI sets this at start, and a notebook would otherwise show lines such as
    ``generator_dataset_op.cc] Memory patch applied`` in the middle of a run."""
    _quiet_log_level()
    with native_output_silenced():
        _import_tensorflow()


def _writes_to(stream: object, descriptor: int) -> bool:
    """Whether ``stream`` is this process's own text stream on ``descriptor`` (a terminal, a pipe
    or a file), not a notebook's or a test runner's stand-in."""
    try:
        return isinstance(stream, io.TextIOWrapper) and stream.fileno() == descriptor
    except (AttributeError, ValueError, OSError):
        return False


# Marks the thread that loads TensorFlow: what Python prints there (such as a library's
# DependencyWarning at import) is dropped, as load_tensorflow drops it.
_loader = threading.local()


class _LoaderOutputDropped(io.TextIOBase):
    """A text stream passing on what every thread but the loader writes."""

    def __init__(self, stream: object) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        if not getattr(_loader, "active", False):
            self.stream.write(text)
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:
        return getattr(self.stream, "encoding", "utf-8")


@contextmanager
def _loader_silenced_others_shown() -> Iterator[None]:
    """Send what native code writes to stdout and stderr nowhere, and what Python prints or
    warns in the loader thread, while what other threads print (progress bars, messages, warnings)
    still shows: in a terminal through copies of the original descriptors, in a notebook as
    before."""
    originals = {"stdout": sys.stdout, "stderr": sys.stderr}
    show_warning = warnings.showwarning

    def shown_unless_loading(*args: object, **kwargs: object) -> None:
        # Dropped before it reaches any stream: a progress bar's own stand-in for sys.stderr
        # (rich's, which draws in a notebook without writing to it) would show it otherwise.
        if not getattr(_loader, "active", False):
            show_warning(*args, **kwargs)

    with _descriptors_to_devnull() as saved:
        copies: list[io.TextIOWrapper] = []
        warnings.showwarning = shown_unless_loading
        try:
            for name, descriptor in (("stdout", 1), ("stderr", 2)):
                stream = originals[name]
                if _writes_to(stream, descriptor):
                    kept = io.FileIO(saved[descriptor], "w", closefd=False)
                    stream = io.TextIOWrapper(kept, stream.encoding, stream.errors, write_through=True)
                    copies.append(stream)
                setattr(sys, name, _LoaderOutputDropped(stream))
            yield
        finally:
            for copy in copies:
                copy.flush()
            sys.stdout, sys.stderr = originals["stdout"], originals["stderr"]
            warnings.showwarning = show_warning


@contextmanager
def tensorflow_loading_behind() -> Iterator[None]:
    """Run the block while TensorFlow and Keras load in a background thread (2 to 5 s of a
    core), then wait for them: work that needs neither, such as LiteRT's feature extraction,
    overlaps their start. Only imports happen in that thread: Keras keeps its settings (seeds,
    precision) per thread, and they are all made in this one afterwards. TensorFlow's start-up
    lines are silenced as :func:`load_tensorflow` silences them, without silencing the block's
    progress bars and messages. Afterwards :func:`load_tensorflow` has nothing left to do."""
    if "tensorflow" in sys.modules or debugging():  # loaded already, or everything is to be seen
        yield
        return
    _quiet_log_level()
    failure: list[BaseException] = []

    def load() -> None:
        _loader.active = True
        try:
            _import_tensorflow()
        except BaseException as exc:  # raised in this thread once the block is done
            failure.append(exc)

    with _loader_silenced_others_shown():
        loader = threading.Thread(target=load, name="breedscope-load-tensorflow", daemon=True)
        loader.start()
        try:
            yield
        finally:
            loader.join()  # also after an error or Ctrl-C: its lines must not reach the terminal
    if failure:
        raise failure[0]
    load_tensorflow()

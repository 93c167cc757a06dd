"""The ``breedscope`` command line (typer). Every user error ends in one sentence and exit code 2.

One module per group of commands; importing them registers them on :data:`app`, in the
order ``breedscope --help`` lists them.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import importlib
import os
import signal
import sys

import typer
from rich.markup import escape

from breedscope.cli.app import app, options
from breedscope.core import signals
from breedscope.core.errors import BreedscopeError, Interrupted, OutputClosed
from breedscope.core.progress import console

# Importing a command module registers its commands on ``app``, in this order in --help.
for _module in ("data", "runs", "models", "studies", "augment", "info"):
    importlib.import_module(f"breedscope.cli.{_module}")


# What to do about an operating system's refusal, by its error number: the refusals a path the
# user gave (or a full disk) can cause. Others are breedscope's to explain, and say so.
_OS_ADVICE = {
    errno.ENOSPC: "free some space (or set BREEDSCOPE_HOME / --runs-dir to a larger disk) and run "
    "again; finished downloads, manifests and checkpoints are kept, and --resume continues a run",
    errno.EACCES: "check the permissions, or choose another folder",
    errno.EROFS: "choose a writable folder (BREEDSCOPE_HOME, --runs-dir)",
    errno.EISDIR: "that is a folder where a file belongs; give the path of a file",
    errno.ENOTDIR: "part of that path is a file where a folder belongs; choose another path",
    errno.EEXIST: "a file is in the way of a folder breedscope makes there; move it or choose another path",
    errno.ENAMETOOLONG: "the path is longer than the file system allows; choose a shorter one",
    errno.ELOOP: "the path goes round a loop of symbolic links; fix or remove the link",
}


def main() -> None:
    """Entry point: run the command line, turning errors into one sentence and an exit code."""
    try:
        code = execute()
    finally:
        # Everything is written and closed by now. Without this, interpreter shutdown walks the
        # million objects TensorFlow leaves behind, which takes about a second of every command.
        gc.freeze()
    if code in (130, *(128 + s for s in signals.HANDLED)):
        # Stopped by a signal, with finished work kept and said. Interpreter shutdown could still
        # abort here ("terminate called without an active exception": a TensorFlow thread running
        # while its C++ objects are destroyed), turning exit 130 into a crash: leave at once.
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)
    if code:
        sys.exit(code)


def execute(args: list[str] | None = None) -> int:
    """Run one command (``args``, or the process's own arguments) and return its exit code:
    0, 2 for anything the user can fix (one sentence said), 130 for Ctrl-C, 143 and 129 for
    SIGTERM and SIGHUP, 141 where the output's reader has gone, 1 for breedscope's own faults."""
    with signals.as_interrupts():
        try:
            code = _run_app(args)
            sys.stdout.flush()  # what print() left buffered: a reader that has gone shows here
        except (OutputClosed, BrokenPipeError):
            code = _output_gone()
    return code if isinstance(code, int) else 1


def _run_app(args: list[str] | None) -> int:
    # TensorFlow's C++ log below errors; its start-up lines are silenced by breedscope.core.quiet.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # albumentations asks PyPI for its latest version at import: a network call and a warning
    # offline, on every command. The CLI's user did not ask for it.
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    options["debug"] = False
    try:
        code = app(args=args, standalone_mode=False)
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.TyperException as exc:  # a usage error: unknown option, missing argument
        show = getattr(exc, "show", None)
        show() if show else console.print(f"Error: {escape(exc.format_message())}")
        code = exc.exit_code
    except (typer.Abort, KeyboardInterrupt):  # Ctrl-C, SIGTERM or SIGHUP (breedscope.core.signals)
        code = signals.exit_code()
    except Interrupted as exc:  # a stop a command turned into what was kept and how to go on
        _say(escape(str(exc)))
        return signals.exit_code(exc.exit_code)
    except BreedscopeError as exc:
        if options["debug"]:
            raise
        console.print(f"[bold red]Error:[/] {escape(str(exc))}")
        code = exc.exit_code
    except OSError as exc:
        if options["debug"] or exc.errno not in _OS_ADVICE:
            raise
        path = exc.filename2 if exc.filename2 is not None else exc.filename  # a rename's target
        where = f" at {path}" if path is not None else ""
        console.print(
            f"[bold red]Error:[/] {os.strerror(exc.errno)}{escape(where)}: {_OS_ADVICE[exc.errno]}."
        )
        code = 2
    except OutputClosed:
        raise  # no fault, and nobody to tell: execute() ends the command
    except Exception as exc:
        if options["debug"]:
            raise
        console.print(
            f"[bold red]Unexpected error:[/] {type(exc).__name__}: {escape(str(exc))}. "
            "Run again with --debug for the traceback, and please report it."
        )
        code = 1
    if code == 130:  # a Ctrl-C no command caught (typer returns it as 130)
        code = signals.exit_code()
    if code in (130, *(128 + s for s in signals.HANDLED)):
        _say("Interrupted; finished work (downloads, manifests, features, checkpoints) is kept.")
    return code or 0


def _output_gone() -> int:
    """The reader of the output has gone (``breedscope predict ... --json | head``): end as a
    program killed by SIGPIPE does, quietly (there is nobody to tell), with its code, 141. What
    is still buffered for stdout goes to /dev/null, so that Python's flush at exit cannot fail."""
    with contextlib.suppress(OSError, ValueError):  # a stand-in stdout (a test) has no descriptor
        descriptor = sys.stdout.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, descriptor)
        os.close(devnull)
    return 128 + signal.SIGPIPE


def _say(text: str) -> None:
    """The closing sentence of a stopped command; an output that is gone loses it, nothing more."""
    with contextlib.suppress(OSError):
        console.print(text)

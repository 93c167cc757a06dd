"""The ``breedscope`` command line (typer). Every user error ends in one sentence and exit code 2.

One module per group of commands; importing them registers them on :data:`app`, in the
order ``breedscope --help`` lists them.
"""

from __future__ import annotations

import errno
import gc
import importlib
import os
import sys

import typer

from breedscope.cli.app import app, options
from breedscope.errors import BreedscopeError, Interrupted
from breedscope.progress import console

# Importing a command module registers its commands on ``app``, in this order in --help.
for _module in ("data", "runs", "models", "studies", "augment", "info"):
    importlib.import_module(f"breedscope.cli.{_module}")


def main() -> None:
    """Entry point: run the app, turning errors into one sentence and an exit code."""
    try:
        _run_app()
    finally:
        # Everything is written and closed by now. Without this, interpreter shutdown walks the
        # million objects TensorFlow leaves behind, which takes about a second of every command.
        gc.freeze()


def _run_app() -> None:
    # TensorFlow's C++ log below errors; its start-up lines are silenced by breedscope.quiet.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # albumentations asks PyPI for its latest version at import: a network call and a warning
    # offline, on every command. The CLI's user did not ask for it.
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    try:
        code = app(standalone_mode=False)
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.TyperException as exc:  # a usage error: unknown option, missing argument
        show = getattr(exc, "show", None)
        show() if show else console.print(f"Error: {exc.format_message()}")
        code = exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        code = 130
    except Interrupted as exc:  # a Ctrl-C a command turned into what was kept and how to go on
        console.print(str(exc))
        sys.exit(exc.exit_code)
    except BreedscopeError as exc:
        if options["debug"]:
            raise
        console.print(f"[bold red]Error:[/] {exc}")
        code = exc.exit_code
    except OSError as exc:
        if options["debug"] or exc.errno not in (errno.ENOSPC, errno.EACCES, errno.EROFS):
            raise
        where = f" at {exc.filename}" if exc.filename else ""
        advice = {
            errno.ENOSPC: "free some space (or set BREEDSCOPE_HOME / --runs-dir to a larger disk) and run "
            "again; finished downloads, manifests and checkpoints are kept, and --resume continues a run",
            errno.EACCES: "check the permissions, or choose another folder",
            errno.EROFS: "choose a writable folder (BREEDSCOPE_HOME, --runs-dir)",
        }[exc.errno]
        console.print(f"[bold red]Error:[/] {os.strerror(exc.errno)}{where}: {advice}.")
        code = 2
    except Exception as exc:
        if options["debug"]:
            raise
        console.print(
            f"[bold red]Unexpected error:[/] {type(exc).__name__}: {exc}. "
            "Run again with --debug for the traceback, and please report it."
        )
        code = 1
    if code == 130:  # a Ctrl-C no command caught (typer returns it as 130)
        console.print("Interrupted; finished work (downloads, manifests, features, checkpoints) is kept.")
    if isinstance(code, int) and code:
        sys.exit(code)

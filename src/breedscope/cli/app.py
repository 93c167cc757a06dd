"""The ``breedscope`` application object, its global options and what every command shares."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from breedscope.cli.help import App
from breedscope.core import quiet
from breedscope.core.errors import BreedscopeError
from breedscope.core.progress import Console
from breedscope.core.versions import __version__

app = App(
    name="breedscope",
    help="Small-data image classification studies, reproduced with one reliable command.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
options = {"debug": False}  # the global options; --debug is read again when an error is reported
out = Console(soft_wrap=True)  # results on stdout; progress, warnings and errors go to stderr


def _version(value: bool) -> None:
    if value:
        out.print(f"breedscope {__version__}", markup=False, highlight=False)
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
) -> None:
    options["debug"] = debug
    if debug:  # TensorFlow's and TFLite's own lines, which are silenced otherwise (breedscope.core.quiet)
        os.environ[quiet.DEBUG_ENV] = "1"


def plugin_registry():
    """The installed plugins, loaded once (their problems said once)."""
    from breedscope import api

    return api.plugins()


def parse_ratios(text: str | None) -> dict | None:
    """``--split``: train,val,test fractions, or train,test for no validation split."""
    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise BreedscopeError(
            f"--split takes train,val,test fractions like 0.7,0.15,0.15, not '{text}'."
        ) from None
    if len(values) == 2:
        values = [values[0], 0.0, values[1]]
    if len(values) != 3:
        raise BreedscopeError(f"--split takes two or three fractions (train,val,test), not '{text}'.")
    return dict(zip(("train", "val", "test"), values, strict=True))

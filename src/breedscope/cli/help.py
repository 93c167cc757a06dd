"""`--help` that reads well at 80 columns, over Typer's own rendering.

Typer 0.29 shows ``{run_dir}`` for a required argument in the usage line and ``<bool>`` after
every flag, and gives a flag's ``--no-`` form a column of its own, which widened the option
column to 46 of 80 characters (``--feature-cache  --no-feature-cache  <bool>``). Here the usage
line, the arguments panel and errors name arguments as Click and most tools do (``RUN_DIR
IMAGES...``, ``[NAME]`` when optional, ``Missing argument 'RUN_DIR'``), a flag shows no type
(it takes no value), and a flag pair is one entry, ``--feature-cache /`` over
``--no-feature-cache``. What a value option takes (``<int>``, ``<path>``) and everything else
are Typer's; ``tests/test_cli.py`` checks the result, so a Typer that renames what is
overridden here fails a test rather than the help silently.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption


class _Argument(TyperArgument):
    @property
    def display_name_raw(self) -> str:  # the help's panel, the usage line and error messages
        return self.metavar or (self.name or "").upper()

    def _usage_display_name(self) -> str:
        name = self.display_name_raw if self.required else f"[{self.display_name_raw}]"
        return f"{name}..." if self.nargs != 1 else name


class _Option(TyperOption):
    def display_type_rich(self, ctx: Any) -> str | None:
        return None if self.is_flag else super().display_type_rich(ctx)


def _conventional(params: Sequence[Any]) -> None:
    """Give Typer's parameters the display above (methods only: parsing is untouched). Typer
    vendors its own Click, so its classes are named, not click's."""
    for param in params:
        if type(param) is TyperArgument:
            param.__class__ = _Argument
        elif type(param) is TyperOption:
            param.__class__ = _Option


@contextmanager
def _flag_pairs_joined(params: Sequence[Any]) -> Iterator[None]:
    """``--x`` and ``--no-x`` as one option name while the help is rendered."""
    pairs = [p for p in params if isinstance(p, TyperOption) and p.opts and p.secondary_opts]
    saved = [(p.opts, p.secondary_opts) for p in pairs]
    for param in pairs:
        param.opts = [f"{' '.join(param.opts)} /\n{' '.join(param.secondary_opts)}"]
        param.secondary_opts = []
    try:
        yield
    finally:
        for param, (opts, secondary) in zip(pairs, saved, strict=True):
            param.opts, param.secondary_opts = opts, secondary


class Command(TyperCommand):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _conventional(self.params)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _conventional(self.get_params(ctx))  # --help's own option is made when it is asked for
        with _flag_pairs_joined(self.get_params(ctx)):
            super().format_help(ctx, formatter)


class Group(TyperGroup):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _conventional(self.params)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _conventional(self.get_params(ctx))  # --help and completion's options are made late
        with _flag_pairs_joined(self.get_params(ctx)):
            super().format_help(ctx, formatter)


class App(typer.Typer):
    """A Typer application whose commands and groups render their help as above."""

    def __init__(self, **options: Any) -> None:
        super().__init__(cls=Group, **options)

    def command(self, *args: Any, cls: type[TyperCommand] | None = None, **options: Any) -> Any:
        return super().command(*args, cls=cls or Command, **options)

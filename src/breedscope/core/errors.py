"""The one exception type the CLI turns into a readable sentence and a non-zero exit code."""

from __future__ import annotations

from pathlib import Path


class BreedscopeError(Exception):
    """A problem the user can fix. The message is one sentence: what is wrong and what to do."""

    exit_code = 2

    def _render_traceback_(self) -> list[str]:
        """What IPython shows for it (Jupyter, Colab): the sentence, as the command line prints
        it, not a traceback through breedscope's code. IPython looks this method up on the
        exception alone; nothing in the session is changed, and plain Python is unaffected."""
        return [f"{type(self).__name__}: {self}"]


class DataError(BreedscopeError):
    """Input data (an archive, a folder, an image) cannot be used as it is."""


class ConfigError(BreedscopeError):
    """A setting is invalid."""


class Interrupted(BreedscopeError):
    """Ctrl-C: what was kept and how to continue it. ``command`` names both the CLI command and
    the API function of the same name that resume ``path``: ``str`` says ``breedscope COMMAND
    --resume PATH``, as the command line prints it, and a notebook shows ``bs.COMMAND(resume=...)``,
    the call a session that used the API continues with."""

    exit_code = 130

    def __init__(self, kept: str, command: str | None = None, path: Path | None = None) -> None:
        self.kept, self.command, self.path = kept, command, path
        how = f" Continue with: breedscope {command} --resume {path}" if command else ""
        super().__init__(f"Interrupted; {kept}{how}")

    def _render_traceback_(self) -> list[str]:
        how = f" Continue with: bs.{self.command}(resume={str(self.path)!r})" if self.command else ""
        return [f"Interrupted: {self.kept}{how}"]


class OutputClosed(Exception):
    """The reader of breedscope's output has gone (``breedscope predict ... --json | head``).
    Not an OSError: the command line framework would turn that into exit code 1 itself."""

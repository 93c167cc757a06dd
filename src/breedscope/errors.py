"""The one exception type the CLI turns into a readable sentence and a non-zero exit code."""


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
    """Ctrl-C: what was kept and how to continue, as the command line says it (``str``) and as a
    notebook shows it (the Python call that continues, for a session that called the API)."""

    exit_code = 130

    def __init__(self, kept: str, command: str | None = None, call: str | None = None) -> None:
        self.kept, self.command, self.call = kept, command, call
        super().__init__(f"Interrupted; {kept}" + (f" Continue with: {command}" if command else ""))

    def _render_traceback_(self) -> list[str]:
        return [f"Interrupted: {self.kept}" + (f" Continue with: {self.call}" if self.call else "")]

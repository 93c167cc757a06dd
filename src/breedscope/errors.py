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
    """Ctrl-C: the message says what was kept and how to continue."""

    exit_code = 130

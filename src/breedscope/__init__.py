"""breedscope: small-data image classification studies, reproduced with one reliable command."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("breedscope")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]

"""Downloading from Kaggle with the official client.

The client is created by :func:`client` and used through one call,
``dataset_download_files``: that is the boundary tests replace. The archive lands in a
``.partial`` folder (the client resumes an interrupted download there) and is moved beside it
only once it opens as a complete archive.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Protocol

from breedscope.datasets.archive import is_archive
from breedscope.errors import DataError
from breedscope.names import check_slug

CREDENTIALS_HELP = (
    "put your API token in ~/.kaggle/access_token (or KAGGLE_API_TOKEN), or kaggle.json in "
    "~/.kaggle/ (or KAGGLE_USERNAME and KAGGLE_KEY); or download the archive by hand and pass "
    "it with --from"
)


class KaggleClient(Protocol):
    def dataset_download_files(
        self, dataset: str, path: str | None = None, force: bool = False, quiet: bool = True
    ) -> Any: ...


def _config_dir() -> Path:
    return Path(os.environ.get("KAGGLE_CONFIG_DIR", Path.home() / ".kaggle")).expanduser()


def has_credentials() -> bool:
    """Whether any credential the Kaggle client accepts is present (checked before calling it)."""
    config = _config_dir()
    return bool(
        os.environ.get("KAGGLE_API_TOKEN")
        or (os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"))
        or (config / "access_token").is_file()
        or (config / "kaggle.json").is_file()
    )


def client() -> KaggleClient:
    """An authenticated Kaggle API client, or a :class:`DataError` saying how to get one."""
    if not has_credentials():
        raise DataError(f"No Kaggle credentials were found: {CREDENTIALS_HELP}.")
    from kaggle.api.kaggle_api_extended import KaggleApi

    api = KaggleApi()
    try:
        api.authenticate()
    except SystemExit as exc:  # the client exits the process when credentials do not work
        raise DataError(f"Kaggle did not accept the credentials found: {CREDENTIALS_HELP}.") from exc
    return api


def _short(exc: BaseException) -> str:
    """An exception in a few words: its type and the start of its first line."""
    first = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {first[:120]}" if first else type(exc).__name__


def _describe_failure(slug: str, exc: Exception) -> str:
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status in (401, 403):
        return (
            f"Kaggle refused access to '{slug}' (HTTP {status}): check your credentials and accept "
            f"the dataset's rules on its Kaggle page; or {CREDENTIALS_HELP.split('; or ')[-1]}."
        )
    if status == 404:
        return f"Kaggle has no dataset '{slug}' (HTTP 404): check the slug (owner/name)."
    return (
        f"Downloading '{slug}' from Kaggle failed ({_short(exc)}); check the network "
        "and run the fetch again (it resumes), or download the archive by hand and pass it with --from."
    )


def download(slug: str, downloads: Path) -> Path:
    """Download ``slug`` into ``downloads`` and return the complete archive's path.

    A complete archive from an earlier fetch is reused; an interrupted one is resumed.
    """
    owner, name = check_slug(slug)
    final = downloads / owner / f"{name}.zip"
    if final.is_file() and is_archive(final):
        return final
    partial_dir = downloads / owner / f"{name}.partial"
    partial_dir.mkdir(parents=True, exist_ok=True)
    try:
        # The client talks to Kaggle as it authenticates (and even as it is imported), so
        # creating it is inside the handling too: offline is one sentence, not a traceback.
        api = client()
        api.dataset_download_files(slug, path=str(partial_dir), force=False, quiet=False)
    except DataError:
        raise
    except OSError as exc:
        if exc.errno == 28:
            raise DataError(
                f"The disk filled up while downloading '{slug}'; free some space and fetch again "
                "(the download resumes)."
            ) from exc
        raise DataError(_describe_failure(slug, exc)) from exc
    except Exception as exc:  # the client raises requests' and its own exception types
        raise DataError(_describe_failure(slug, exc)) from exc
    archives = [p for p in sorted(partial_dir.iterdir()) if is_archive(p)]
    if not archives:
        raise DataError(
            f"Kaggle's download of '{slug}' did not produce a complete archive; run the fetch "
            "again (it resumes), or download it by hand and pass it with --from."
        )
    shutil.move(str(archives[0]), final)
    shutil.rmtree(partial_dir, ignore_errors=True)
    return final

"""Getting a Kaggle dataset: a copy mounted in a Kaggle notebook, or a download.

Kaggle's maintained clients do the talking: kagglehub finds credentials wherever Kaggle's tools
put them (``KAGGLE_API_TOKEN``, ``~/.kaggle/access_token``, ``KAGGLE_USERNAME``/``KAGGLE_KEY``,
``kaggle.json`` in ``$KAGGLE_CONFIG_DIR`` or ``~/.kaggle``, Colab secrets) and kagglesdk, on
which it builds, makes the API calls. The archive itself is saved by :mod:`transfer` (bounded by
the size Kaggle announces, checked against its MD5, resumed after an interruption) and extracted
by :mod:`archive` with the checks every archive passes, which kagglehub's own extraction lacks:
a 1 MB zip served to it became a 1 GiB file. breedscope adds retries on 429 and server errors,
one sentence for every failure, and the mounted copy in a Kaggle notebook.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from breedscope.core import paths
from breedscope.core.errors import DataError
from breedscope.core.names import check_slug
from breedscope.data import archive, transfer

if TYPE_CHECKING:
    import requests
    from kagglesdk import KaggleClient

# Where Kaggle mounts a notebook's datasets; a setting so that it can be pointed elsewhere.
KAGGLE_INPUT_ENV = "BREEDSCOPE_KAGGLE_INPUT"
KAGGLE_INPUT = Path("/kaggle/input")
RETRIES = 4  # attempts after the first, for 429, 5xx and dropped connections
MAX_WAIT_S = 30.0  # the longest pause between attempts, whatever Retry-After asks

CREDENTIAL_PLACES = (
    "KAGGLE_API_TOKEN, ~/.kaggle/access_token, KAGGLE_USERNAME and KAGGLE_KEY, kaggle.json in "
    "$KAGGLE_CONFIG_DIR, ~/.kaggle or ~/.config/kaggle, ~/.kaggle/credentials.json from "
    "`kaggle auth login`, or Colab secrets"
)
# Where Kaggle's command-line client keeps credentials and kagglehub does not look.
XDG_KAGGLE_JSON = Path("~/.config/kaggle/kaggle.json")
OAUTH_CREDENTIALS = Path("~/.kaggle/credentials.json")
T = TypeVar("T")


def page(slug: str) -> str:
    return f"https://www.kaggle.com/datasets/{slug}"


@dataclass(frozen=True)
class KaggleCopy:
    """A Kaggle dataset's files on this machine, and which version they are."""

    root: Path
    handle: str  # owner/name/versions/N, or owner/name when the version is not known
    version: int | None
    mounted: bool  # a Kaggle notebook's read-only input, not a download


def mounted_copy(slug: str) -> KaggleCopy | None:
    """The copy a Kaggle notebook mounts when the dataset is added to it, if there is one.

    Kaggle mounts an attached dataset at ``/kaggle/input/<name>`` (newer notebooks:
    ``/kaggle/input/datasets/<owner>/<name>``); ``$BREEDSCOPE_KAGGLE_INPUT`` replaces
    ``/kaggle/input``. The mount carries no version number.
    """
    owner, name = check_slug(slug)
    base = Path(os.environ.get(KAGGLE_INPUT_ENV, KAGGLE_INPUT))
    for candidate in (base / name, base / "datasets" / owner / name):
        if candidate.is_dir() and any(candidate.iterdir()):
            return KaggleCopy(candidate, slug, None, mounted=True)
    return None


def _status(exc: BaseException) -> int | None:
    return getattr(getattr(exc, "response", None), "status_code", None)


def _retry_after(exc: BaseException) -> float | None:
    headers = getattr(getattr(exc, "response", None), "headers", None) or {}
    try:
        return float(headers.get("Retry-After", ""))
    except ValueError:
        return None


def _tries_allowed(exc: BaseException) -> int:
    """How many retries a failure is worth: Kaggle busy or failing (429, 5xx) and a transfer cut
    short, up to RETRIES; a connection that cannot be made at all (offline, a proxy refusing)
    one, so that being offline is said in seconds; anything else none."""
    import requests

    status = _status(exc)
    if status is not None:
        return RETRIES if status == 429 or status >= 500 else 0
    if isinstance(exc, requests.exceptions.ChunkedEncodingError | requests.ReadTimeout | transfer.CutShort):
        return RETRIES  # a transfer cut short: the next attempt resumes from what arrived
    if isinstance(exc, requests.ConnectionError | requests.Timeout):
        return 1
    return 0


def with_retries(
    call: Callable[[], T], say: Callable[[str], None], sleep: Callable[[float], None] = time.sleep
) -> T:
    """``call()``, again after a pause (1, 2, 4, 8 s, or what Retry-After asks, at most 30 s)
    while it fails in a way that may pass (see :func:`_tries_allowed`); any other failure, or
    the last one, is raised."""
    for attempt in range(RETRIES + 1):
        try:
            return call()
        except Exception as exc:
            allowed = _tries_allowed(exc)
            if attempt >= allowed:
                raise
            asked = _retry_after(exc)
            wait = min(MAX_WAIT_S, asked if asked is not None else 2.0**attempt)
            reason = f"HTTP {_status(exc)}" if _status(exc) else type(exc).__name__
            say(f"Kaggle: {reason}; trying again in {wait:.0f} s (retry {attempt + 1} of {allowed}).")
            sleep(wait)
    raise AssertionError("unreachable")


def credentials_found() -> bool:
    """Whether kagglehub finds any credential, where it looks (Colab secrets included)."""
    from kagglehub.config import get_kaggle_credentials

    try:
        return get_kaggle_credentials() is not None
    except ValueError:  # a kaggle.json that is not JSON or misses a key
        return True


def hand_over_cli_credentials() -> None:
    """Give kagglehub the credentials Kaggle's command-line client keeps where kagglehub does not
    look: ``~/.config/kaggle/kaggle.json`` (its fallback folder) and ``~/.kaggle/credentials.json``
    (``kaggle auth login``, whose access token is refreshed as that client would). Nothing is
    done when kagglehub finds credentials of its own."""
    import json

    from kagglehub import config

    if credentials_found():
        return
    xdg = XDG_KAGGLE_JSON.expanduser()
    if "KAGGLE_CONFIG_DIR" not in os.environ and xdg.is_file():
        data = json.loads(xdg.read_text(encoding="utf-8"))
        if not {"username", "key"} <= set(data):
            raise ValueError(f"Kaggle credentials file at {xdg} is missing 'username' or 'key'")
        config.set_kaggle_credentials(data["username"], data["key"])
        return
    if OAUTH_CREDENTIALS.expanduser().is_file():
        from kagglesdk import KaggleClient
        from kagglesdk.kaggle_creds import KaggleCredentials
        from kagglesdk.kaggle_env import get_env

        saved = KaggleCredentials.load(KaggleClient(env=get_env()), str(OAUTH_CREDENTIALS.expanduser()))
        token = saved.get_access_token() if saved else None
        if token:
            config.set_kaggle_api_token(token)


def describe_failure(slug: str, version: int | None, exc: BaseException) -> str:
    """One sentence for a failed download: what happened and what to do."""
    status = _status(exc)
    by_hand = f"or download it from {page(slug)} and pass the archive with --from"
    if isinstance(exc, ValueError) and "credentials" in str(exc).lower():
        return f"{str(exc).rstrip('.')}: fix or remove it, {by_hand}."
    if status == 401 or type(exc).__name__ == "UnauthenticatedError":
        if not credentials_found():
            return (
                f"Kaggle needs credentials for '{slug}' and none were found (looked in "
                f"{CREDENTIAL_PLACES}): create a token at https://www.kaggle.com/settings, {by_hand}."
            )
        return (
            f"Kaggle did not accept the credentials found for '{slug}' (looked in {CREDENTIAL_PLACES}): "
            f"create a new token at https://www.kaggle.com/settings, {by_hand}."
        )
    if status == 403:
        return (
            f"Kaggle refused '{slug}' (HTTP 403): sign in and accept the dataset's rules at "
            f"{page(slug)}, or check your credentials ({CREDENTIAL_PLACES}); {by_hand}."
        )
    if status == 404:
        what = f"version {version} of '{slug}'" if version else f"a dataset '{slug}'"
        hint = "fetch --latest, or another --version" if version else "check the slug (owner/name)"
        return f"Kaggle has no {what} (HTTP 404): {hint}, {by_hand}."
    if type(exc).__name__ == "DataCorruptionError":
        return (
            f"The download of '{slug}' did not match the checksum Kaggle sent, so it was deleted; "
            f"fetch again, {by_hand}."
        )
    detail = f"HTTP {status}" if status else type(exc).__name__
    return (
        f"Downloading '{slug}' from Kaggle failed ({detail}); check the network and fetch again "
        f"(what was downloaded is kept and the download resumes), {by_hand}."
    )


def _client() -> KaggleClient:
    """Kaggle's API client (kagglesdk, which kagglehub builds on), with the credentials kagglehub
    finds. Never verbose: kagglesdk's verbose mode (its TEST environment's default) reads every
    response body whole into memory to print it, which no download can afford."""
    from kagglehub.clients import get_user_agent
    from kagglehub.config import get_kaggle_credentials
    from kagglesdk import KaggleClient
    from kagglesdk.kaggle_env import get_env

    credentials = get_kaggle_credentials()
    found = {}
    if credentials is not None:
        found = {
            "username": credentials.username,
            "password": credentials.key,
            "api_token": credentials.api_key,
        }
    return KaggleClient(env=get_env(), verbose=False, user_agent=get_user_agent(), **found)


def _current_version(client: KaggleClient, owner: str, name: str) -> int:
    from kagglesdk.datasets.types.dataset_api_service import ApiGetDatasetRequest

    request = ApiGetDatasetRequest()
    request.owner_slug, request.dataset_slug = owner, name
    with transfer.read_timeout():
        return int(client.datasets.dataset_api_client.get_dataset(request).current_version_number)


@dataclass
class _ArchiveDownload:
    """One dataset version's archive, saved by :mod:`transfer`: asked of Kaggle's API once per
    process, then resumed from the address it redirected to (no second API call, and no second
    download started only to be dropped)."""

    client: KaggleClient
    owner: str
    name: str
    version: int
    target: Path
    url: str | None = None

    def __call__(self) -> Path:
        with transfer.read_timeout():
            return transfer.save(self.open_from, self.target, f"Downloading {self.owner}/{self.name}")

    def open_from(self, start: int) -> requests.Response:
        """The archive from byte ``start`` on: the API's redirect the first time, the address it
        redirected to after that."""
        import requests
        from kagglesdk.datasets.types.dataset_api_service import ApiDownloadDatasetRequest

        if self.url is None:
            request = ApiDownloadDatasetRequest()
            request.owner_slug, request.dataset_slug = self.owner, self.name
            request.dataset_version_number = self.version
            response = self.client.datasets.dataset_api_client.download_dataset(request)
            self.url = response.url
            if not start:
                return response
            response.close()  # a part is kept: only the rest is wanted
        wanted = {"Range": f"bytes={start}-"} if start else {}
        response = requests.get(self.url, stream=True, headers=wanted, timeout=transfer.READ_TIMEOUT_S)
        if start and response.status_code == 416:  # the part is whole already, or longer: start again
            response.close()
            response = requests.get(self.url, stream=True, timeout=transfer.READ_TIMEOUT_S)
        response.raise_for_status()
        return response


def download(
    slug: str, version: int | None, force: bool = False, say: Callable[[str], None] = print
) -> KaggleCopy:
    """Download version ``version`` of ``slug`` (the current one when ``None``) into
    ``BREEDSCOPE_HOME/downloads/kaggle/OWNER/NAME/VERSION/``, bounded by the size Kaggle
    announces and checked against its MD5, and extract it with the checks every archive passes
    (``--from`` too): no entry outside the folder, no decompression bomb, room on the disk.
    A version already there is used as it is; ``force`` downloads it again. An interrupted
    download is kept (``archive.part``) and resumed by the next fetch."""
    owner, name = check_slug(slug)
    try:
        hand_over_cli_credentials()
        client = _client()
        version = version or with_retries(lambda: _current_version(client, owner, name), say)
        folder = paths.downloads_dir() / "kaggle" / owner / name / str(version)
        files, zipped = folder / "files", folder / "archive"
        if force:
            archive.remove_tree(files)
            archive.remove_tree(folder / "archive.part")
        if not files.is_dir():
            with_retries(_ArchiveDownload(client, owner, name, version, zipped), say)
            _extract(zipped, files)
    except transfer.ChecksumMismatch as exc:
        raise DataError(
            f"The download of '{slug}' did not match the checksum Kaggle sent, so it was deleted; fetch "
            f"again, or download it from {page(slug)} and pass the archive with --from."
        ) from exc
    except DataError:
        raise
    except OSError as exc:
        if exc.errno == 28:  # ENOSPC: not worth a retry
            raise DataError(
                f"The disk filled up while downloading '{slug}'; free some space (or set BREEDSCOPE_HOME "
                "to a larger disk) and fetch again: what was downloaded is kept."
            ) from exc
        raise DataError(describe_failure(slug, version, exc)) from exc
    except Exception as exc:  # requests' and kagglesdk's exception types
        raise DataError(describe_failure(slug, version, exc)) from exc
    return KaggleCopy(files, f"{slug}/versions/{version}", version, mounted=False)


def _extract(zipped: Path, files: Path) -> None:
    """Extract the downloaded archive into ``files`` whole, or not at all; the archive goes
    either way (a refused one is hostile or broken, and is not extracted again)."""
    staging = files.with_name(".files.staging")
    archive.remove_tree(staging)
    try:
        archive.extract(zipped, staging)
        os.replace(staging, files)
    finally:
        archive.remove_tree(staging)
        zipped.unlink(missing_ok=True)


def obtain(slug: str, version: int | None, force: bool, say: Callable[[str], None]) -> KaggleCopy:
    """The dataset's files: a Kaggle notebook's mounted copy when there is one (nothing is
    downloaded), else a download of ``version``."""
    mounted = None if force else mounted_copy(slug)
    if mounted is not None:
        say(f"Using the copy of '{slug}' mounted in this Kaggle notebook: {mounted.root}")
        return mounted
    return download(slug, version, force, say)

"""Names that become paths: one safe component each, checked before any work."""

from __future__ import annotations

import pytest

from breedscope.core import paths
from breedscope.core.errors import ConfigError
from breedscope.core.names import check_name, check_slug


@pytest.mark.parametrize("name", ["chest_xray", "pets-2", "v1.0", "A"])
def test_plain_names_pass(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", ".", "..", "../downloads", "/some/dir", "a/b", "a\\b", "x" * 101, "ä"])
def test_names_that_are_paths_or_odd_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="dataset name"):
        check_name(name)


def test_a_dataset_folder_cannot_be_built_from_a_path() -> None:
    with pytest.raises(ConfigError):
        paths.dataset_dir("..")
    assert paths.dataset_dir("bccd") == paths.datasets_dir() / "bccd"


@pytest.mark.parametrize("slug", ["brikwerk/bccd-white-blood-cell", "paultimothymooney/chest-xray-pneumonia"])
def test_kaggle_slugs_split_into_owner_and_name(slug: str) -> None:
    assert "/".join(check_slug(slug)) == slug


@pytest.mark.parametrize(
    "slug", ["../../../../tmp/x", "owner", "owner/", "/name", "a/b/c", "owner/..", "../x"]
)
def test_kaggle_slugs_that_climb_are_refused(slug: str) -> None:
    with pytest.raises(ConfigError, match="owner/dataset"):
        check_slug(slug)

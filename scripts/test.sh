#!/usr/bin/env bash
# Install breedscope with its test and docs extras into .venv, then run every check CI runs:
# ruff, the test suite and a strict documentation build. Extra arguments go to pytest.
# The suite runs on two worker processes (pytest-xdist; most tests wait on a CLI subprocess or
# on one core of TensorFlow); tests marked `whole_run` start first on both (tests/conftest.py), so
# the two end together on short tests. `-m "not whole_run"` is the quick loop (about two minutes).
set -euo pipefail
source "$(dirname "$0")/setup.sh" "[dev]"
ruff check .
ruff format --check .
python -m pytest -n 2 --dist worksteal "$@"
mkdocs build --strict --quiet --site-dir "$(mktemp -d)"

#!/usr/bin/env bash
# Install breedscope with its test and docs extras into .venv, then run every check CI runs:
# ruff, the test suite and a strict documentation build. Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "$0")/setup.sh" "[dev]"
ruff check .
ruff format --check .
python -m pytest "$@"
mkdocs build --strict --quiet --site-dir "$(mktemp -d)"

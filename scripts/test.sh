#!/usr/bin/env bash
# Install breedscope with its test and docs extras into .venv, then run every check CI runs:
# ruff, the test suite and a strict documentation build. Extra arguments go to pytest.
# The suite runs on two worker processes (pytest-xdist; most tests wait on a CLI subprocess or
# on one core of TensorFlow): 7 to 19 minutes on two cores (18 to 19 on a 2-vCPU AMD EPYC, where
# importing TensorFlow takes 7.8 s in every CLI process a test starts), twice that in one (`-n 0`).
# `-m "not whole_run"` leaves out the tests that train whole runs: the quick loop, two to three minutes.
set -euo pipefail
source "$(dirname "$0")/setup.sh" "[dev]"
ruff check .
ruff format --check .
python -m pytest -n 2 --dist worksteal "$@"
mkdocs build --strict --quiet --site-dir "$(mktemp -d)"

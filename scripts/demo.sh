#!/usr/bin/env bash
# Install breedscope into .venv and run the offline demo: train, evaluate, report.
# Extra arguments go to `breedscope run` (for example --epochs 5).
set -euo pipefail
source "$(dirname "$0")/setup.sh" ""
breedscope run --dataset demo "$@"

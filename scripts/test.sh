#!/usr/bin/env bash
# Runs the test suite in .venv (make it with scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
exec .venv/bin/python -m pytest -q test "$@"

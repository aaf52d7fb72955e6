#!/usr/bin/env bash
# Lint (ruff), types (mypy), then the test suite, in .venv (make it with scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
.venv/bin/ruff check spidepth_core spidepth_ros test launch
.venv/bin/mypy spidepth_core spidepth_ros
exec .venv/bin/python -m pytest -q test "$@"

#!/usr/bin/env bash
# Fresh machine -> depth: sets up .venv, then runs the main job on the bundled default model.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
.venv/bin/spidepth predict spidepth_core/assets/sample.png --output depth_out
echo "quickstart: depth, 16-bit PNG (mm) and preview written to depth_out/"

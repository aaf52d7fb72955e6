#!/usr/bin/env bash
# Fresh machine -> depth: sets up .venv, then runs the main job, the depth node on the bundled default
# model fed the sample recording over DDS (loopback only), writing demo_out/demo_preview.png and a PLY.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
.venv/bin/python -m spidepth_ros.demo --output demo_out

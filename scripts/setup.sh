#!/usr/bin/env bash
# Creates .venv with everything spidepth_ros needs (idempotent). Uses a sourced ROS 2 if there is one.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  if "$PY" -c "import rclpy" 2>/dev/null; then
    echo "setup: using the sourced ROS 2 install (rclpy found)"
    "$PY" -m venv --system-site-packages .venv
  else
    "$PY" -m venv .venv
  fi
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
# CI pins (the versions this machine caches); setup.py keeps ranges for users.
python -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
python -m pip install -q -e ".[train,test,pretrained]"
python -m pip install -q "ruff==0.17.6" "mypy==2.4.1"   # the lint and type checks give the same verdict in CI
if ! python -c "import rclpy" 2>/dev/null; then
  echo "setup: no ROS 2 found; installing rclpy and messages from PyPI"
  python -m pip install -q ros-rclpy ros-sensor-msgs ros-std-msgs ros-geometry-msgs ros-diagnostic-msgs \
    ros-rmw-fastrtps-cpp
fi
python -c "import torch, timm, onnxruntime, rosbags, rclpy; print('setup: ok, torch', torch.__version__)"

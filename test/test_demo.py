"""The README's main job: the demo plays the sample recording into the node and writes its outputs."""
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT
from spidepth_core.inference import default_model_path

pytestmark = pytest.mark.slow  # runs the node and the sample recording end to end


@pytest.mark.skipif(not default_model_path().is_file(), reason="no bundled model in this checkout")
def test_demo_runs_end_to_end(tmp_path):
    env = {**os.environ, "SPIDEPTH_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "spidepth_ros.demo", "--output", str(tmp_path / "out"),
                           "--loops", "1"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "output" in proc.stdout and "latency median" in proc.stdout
    sent_hz = float(re.search(r"demo: input ([\d.]+) Hz", proc.stdout).group(1))
    node_hz = float(re.search(r"input_rate_hz=([\d.]+)", proc.stdout).group(1))
    assert abs(node_hz / sent_hz - 1) < 0.25, proc.stdout  # the node's diagnostics agree with the player's rate
    assert (tmp_path / "out" / "demo_preview.png").stat().st_size > 1000
    ply = (tmp_path / "out" / "demo_cloud.ply").read_text().splitlines()
    assert ply[0] == "ply" and int(ply[2].split()[-1]) > 1000
    assert (tmp_path / "cache" / "sample_camera_bag" / "metadata.yaml").is_file()

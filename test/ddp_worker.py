"""Run under torchrun: trains a few steps and writes this rank's weights for the test to compare."""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from spidepth_core.config import load_config  # noqa: E402
from spidepth_core.trainer import Trainer  # noqa: E402

if __name__ == "__main__":
    out = Path(sys.argv[1])
    cfg = load_config(None, sys.argv[2:])
    trainer = Trainer(cfg, resume=False)
    trainer.fit()
    state = {f"depth.{k}": v for k, v in trainer.depth_model().state_dict().items()}
    state.update({f"pose.{k}": v for k, v in trainer.pose_model().state_dict().items()})
    torch.save(state, out / f"rank{trainer.dist.rank}.pt")

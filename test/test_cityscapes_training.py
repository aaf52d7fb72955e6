"""Cityscapes preprocessed triplets (ManyDepth layout) as a training source."""
import math

import cv2
import numpy as np
import pytest

from conftest import tiny_overrides
from spidepth_core.config import load_config
from spidepth_core.data import find_sequences
from spidepth_core.data.cityscapes import cityscapes_dataset_parts, read_cam, read_split
from spidepth_core.data.sample import TripletDataset
from spidepth_core.trainer import Trainer


def _write_triplets(world_dir, root):
    """Two cities with different cameras: aachen as rendered, bochum cropped 16 px on the left."""
    seq = find_sequences(world_dir)[0]
    lines, expected = [], {}
    for city, left in (("aachen", 0), ("bochum", 16)):
        (root / city).mkdir(parents=True)
        K = seq.K.copy()
        K[0, 2] -= left
        for t in range(1, 7):
            name = f"{city}_000000_{t:06d}"
            frames = [seq.image(t + d)[:, left:] for d in (-1, 0, 1)]
            cv2.imwrite(str(root / city / f"{name}.jpg"), cv2.cvtColor(np.hstack(frames), cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_JPEG_QUALITY, 100])
            (root / city / f"{name}_cam.txt").write_text(",".join(f"{v:.6f}" for v in K.reshape(-1)))
            lines.append(f"{city} {name}")
            expected[name] = (K, frames)
    split = root / "train_files.txt"
    split.write_text("\n".join(lines) + "\n")
    return split, expected


def _one_city(split, city):
    """The split's lines for one city (the cities' frames differ in size, so a batch takes one)."""
    out = split.with_name(f"{city}.txt")
    out.write_text("".join(f"{line}\n" for line in split.read_text().splitlines() if line.startswith(city)))
    return out


def test_triplets_give_frames_in_order_and_per_city_intrinsics(world_dir, tmp_path):
    root = tmp_path / "cs"
    split, expected = _write_triplets(world_dir, root)
    aachen = _one_city(split, "aachen")
    seqs, idx = cityscapes_dataset_parts(root, aachen)
    ds = TripletDataset(seqs, 32, 96, indices=idx)
    assert len(ds) == 6
    name = "aachen_000000_000003"
    K, frames = expected[name]
    sample = ds[2]
    for got, want in zip(sample["frames"], (frames[1], frames[0], frames[2])):  # order (0, -1, +1)
        want = cv2.resize(want, (96, 32), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
        assert np.abs(got.permute(1, 2, 0).numpy() - want).mean() < 0.02
    assert sample["K"][0, 0].item() == pytest.approx(K[0, 0] * 96 / 192, rel=1e-4)
    assert sample["K"][1, 2].item() == pytest.approx(K[1, 2] * 32 / 64, rel=1e-4)


def test_each_triplet_reads_its_own_camera(world_dir, tmp_path):
    root = tmp_path / "cs"
    _, expected = _write_triplets(world_dir, root)
    bochum = root / "bochum.txt"
    bochum.write_text("bochum bochum_000000_000002\n")
    seqs, _ = cityscapes_dataset_parts(root, bochum)
    np.testing.assert_allclose(seqs[0].K, expected["bochum_000000_000002"][0], atol=1e-5)
    assert seqs[0].size == (64, 176)


def test_clear_errors(world_dir, tmp_path):
    root = tmp_path / "cs"
    split, _ = _write_triplets(world_dir, root)
    bad = tmp_path / "bad.txt"
    bad.write_text("aachen aachen_000000_000001\naachen\n")
    with pytest.raises(ValueError, match="bad.txt:2"):
        read_split(bad)
    with pytest.raises(ValueError, match="frames .0, -1, 1. with stride 1"):
        cityscapes_dataset_parts(root, split, frame_ids=(0, -2, 2))
    # mixed sizes: bochum's frames are narrower than aachen's
    seqs, idx = cityscapes_dataset_parts(root, split)
    with pytest.raises(ValueError, match="expected 192x64"):
        TripletDataset(seqs, 32, 96, indices=idx)[len(idx) - 1]
    (root / "aachen" / "aachen_000000_000002_cam.txt").write_text("1,2,3")
    with pytest.raises(ValueError, match="expected 9 numbers"):
        read_cam(root / "aachen" / "aachen_000000_000002_cam.txt")
    (root / "aachen" / "aachen_000000_000004_cam.txt").unlink()
    with pytest.raises(FileNotFoundError, match="000004_cam.txt"):
        read_cam(root / "aachen" / "aachen_000000_000004_cam.txt")
    odd = tmp_path / "odd"
    (odd / "x").mkdir(parents=True)
    cv2.imwrite(str(odd / "x" / "x_0_1.jpg"), np.zeros((8, 100, 3), np.uint8))
    (tmp_path / "odd.txt").write_text("x x_0_1\n")
    with pytest.raises(ValueError, match="not three frames"):
        cityscapes_dataset_parts(odd, tmp_path / "odd.txt")


def test_trainer_trains_on_cityscapes_triplets(world_dir, tmp_path):
    root = tmp_path / "cs"
    split, _ = _write_triplets(world_dir, root)
    aachen = _one_city(split, "aachen")
    overrides = tiny_overrides(root, tmp_path / "run", **{"data.source": "cityscapes", "data.split": str(aachen)})
    trainer = Trainer(load_config(None, overrides), resume=False)
    assert len(trainer.train_ds) == 6
    scalars = trainer.fit()
    assert (tmp_path / "run" / "last.pt").is_file() and trainer.global_step == 3  # one epoch: 6 triplets, batch 2
    assert math.isfinite(scalars["loss"]) and scalars["loss"] > 0
    no_split = [o for o in overrides if not o.startswith("data.split")]
    with pytest.raises(ValueError, match="data.split is required for Cityscapes"):
        Trainer(load_config(None, no_split), resume=False)


@pytest.mark.parametrize("name, source, model", [
    ("train_kitti.yaml", "kitti", "spidepth_convnext_large_320x1024"),
    ("train_cityscapes.yaml", "cityscapes", "spidepth_convnext_large_cityscapes_192x512")])
def test_paper_configs_load(name, source, model):
    from pathlib import Path

    from spidepth_core.models import model_config
    cfg = load_config(Path(__file__).parents[1] / "config" / name, [])
    assert cfg.data.source == source and cfg.model.name == model and cfg.data.split
    model_config(cfg.model.name)  # a registered model

import logging

import cv2
import numpy as np
import pytest
import torch
import yaml

from spidepth_core.data import FolderSequence, TripletDataset, find_sequences, load_intrinsics, video_to_folder


def test_sample_format_from_world(world_dir):
    seqs = find_sequences(world_dir)
    assert len(seqs) == 2 and len(seqs[0]) == 24
    ds = TripletDataset(seqs, 32, 96, frame_ids=[0, -1, 1], flip=0.0, color_jitter=1.0)
    assert len(ds) == 2 * 22
    s = ds[0]
    assert s["frames"].shape == (3, 3, 32, 96) and s["frames_aug"].shape == (3, 3, 32, 96)
    assert 0 <= s["frames"].min() and s["frames"].max() <= 1
    assert not torch.equal(s["frames"], s["frames_aug"])
    # K scaled from 64x192 to 32x96.
    assert torch.allclose(s["K"], torch.tensor([[0.58 * 96, 0, 48], [0, 1.92 * 32, 16], [0, 0, 1]]))
    assert s["depth_gt"].shape == (1, 32, 96) and s["depth_gt"].max() > 1
    # Frame 0 is the middle one of the triplet.
    direct = cv2.cvtColor(cv2.imread(str(seqs[0].files[1])), cv2.COLOR_BGR2RGB)
    resized = cv2.resize(direct, (96, 32), interpolation=cv2.INTER_AREA)
    assert torch.allclose(s["frames"][0], torch.from_numpy(resized).permute(2, 0, 1).float() / 255)


def test_augmentation_is_deterministic_per_epoch(world_dir):
    ds = TripletDataset(find_sequences(world_dir), 32, 96, flip=0.5, color_jitter=0.5, seed=3)
    a = [ds[i]["frames_aug"] for i in range(6)]
    assert all(torch.equal(x, ds[i]["frames_aug"]) for i, x in enumerate(a))
    ds.set_epoch(1)
    assert any(not torch.equal(x, ds[i]["frames_aug"]) for i, x in enumerate(a))


def test_flip_updates_intrinsics(world_dir):
    ds = TripletDataset(find_sequences(world_dir), 32, 96, flip=1.0)
    s = ds[0]
    assert torch.isclose(s["K"][0, 2], torch.tensor(96 - 1 - 48.0))


def _folder(tmp_path, n=5, size=(40, 60)):
    seq = tmp_path / "seq"
    seq.mkdir()
    for i in range(n):
        cv2.imwrite(str(seq / f"{i}.png"), np.full((*size, 3), i * 20, np.uint8))
    return seq


def test_intrinsics_formats(tmp_path):
    a = tmp_path / "a.yaml"
    a.write_text(yaml.safe_dump(dict(fx=50, fy=51, cx=30, cy=20, width=60, height=40)))
    K, size = load_intrinsics(a)
    assert K[0, 0] == 50 and K[1, 2] == 20 and size == (40, 60)
    b = tmp_path / "b.yaml"
    b.write_text(yaml.safe_dump(dict(image_width=60, image_height=40,
                                     camera_matrix=dict(rows=3, cols=3, data=[50, 0, 30, 0, 51, 20, 0, 0, 1]))))
    K2, size2 = load_intrinsics(b)
    assert np.allclose(K, K2) and size2 == size
    bad = tmp_path / "bad.yaml"
    bad.write_text("fx: 1\n")
    with pytest.raises(ValueError, match="need fx"):
        load_intrinsics(bad)
    zero = tmp_path / "zero.yaml"
    zero.write_text(yaml.safe_dump(dict(fx=0, fy=1, cx=1, cy=1)))
    with pytest.raises(ValueError, match="positive"):
        load_intrinsics(zero)


def test_clear_errors(tmp_path):
    seq = _folder(tmp_path)
    intr = tmp_path / "k.yaml"
    intr.write_text(yaml.safe_dump(dict(fx=50, fy=50, cx=30, cy=20, width=60, height=40)))
    with pytest.raises(FileNotFoundError):
        find_sequences(tmp_path / "missing", intr)
    with pytest.raises(ValueError, match="no intrinsics"):
        FolderSequence(seq)
    wrong = tmp_path / "w.yaml"
    wrong.write_text(yaml.safe_dump(dict(fx=50, fy=50, cx=30, cy=20, width=640, height=480)))
    with pytest.raises(ValueError, match="is for 640x480"):
        FolderSequence(seq, wrong)
    seq_obj = FolderSequence(seq, intr)
    cv2.imwrite(str(seq / "2.png"), np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(ValueError, match="expected 60x40"):
        seq_obj.image(2)
    (seq / "3.png").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="cannot read image"):
        seq_obj.image(3)
    with pytest.raises(ValueError, match="too short"):
        TripletDataset([seq_obj], 20, 30, stride=3)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no images"):
        find_sequences(empty, intr)


def test_video_is_decoded_once(tmp_path):
    path = tmp_path / "v.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(6):
        writer.write(np.full((48, 64, 3), i * 30, np.uint8))
    writer.release()
    out = video_to_folder(path, tmp_path / "frames")
    assert len(list(out.glob("*.png"))) == 6
    (out / "000000.png").unlink()
    video_to_folder(path, tmp_path / "frames")  # cached: not decoded again
    assert len(list(out.glob("*.png"))) == 5


def test_synthetic_camera_height_is_rendered_and_kept_apart(tmp_path):
    from spidepth_core.synth import camera_path, generate
    car, robot = camera_path(3, 20), camera_path(3, 20, mount_height=0.8)
    assert np.all((-car[:, 1, 3] > 1.45) & (-car[:, 1, 3] < 1.85))  # world Y points down
    assert np.allclose(-robot[:, 1, 3], 0.8, atol=0.03)
    assert np.allclose(robot[:, [0, 2], 3], car[:, [0, 2], 3]) and np.allclose(robot[:, :3, :3], car[:, :3, :3])
    folder = generate(tmp_path, [3], 3, 32, 96, workers=1, mount_height=0.8)[0]
    written = np.loadtxt(folder / "poses.txt").reshape(-1, 3, 4)
    assert np.allclose(-written[:, 1, 3], 0.8, atol=0.03)
    assert yaml.safe_load((folder / "intrinsics.yaml").read_text())["mount_height"] == 0.8
    assert generate(tmp_path, [3], 3, 32, 96, workers=1, mount_height=0.8) == [folder]  # reused as it is
    with pytest.raises(ValueError, match="mount_height=0.8, not None"):
        generate(tmp_path, [3], 3, 32, 96, workers=1)
    with pytest.raises(ValueError, match="> 0 metres"):
        camera_path(3, 5, mount_height=-1.0)


def test_finer_loss_resolution_keeps_the_frames_detail(world_dir, caplog):
    caplog.set_level(logging.INFO, logger="spidepth_core.data.sample")
    seqs = find_sequences(world_dir)
    s = TripletDataset(seqs, 32, 96, flip=0.0, loss_factor=2)[0]
    assert s["frames"].shape == (3, 3, 64, 192) and s["depth_gt"].shape == (1, 32, 96)
    native = cv2.cvtColor(cv2.imread(str(seqs[0].files[1])), cv2.COLOR_BGR2RGB)
    assert torch.equal(s["frames"][0], torch.from_numpy(native).permute(2, 0, 1).float() / 255)
    assert torch.allclose(s["K"], torch.from_numpy(seqs[0].K).float())
    assert not caplog.records  # frames that hold the factor asked for: nothing to report
    finest = TripletDataset(seqs, 32, 96, flip=0.0, loss_factor=3)  # the 64x192 frames hold 2x, not 3x
    assert finest.loss_factor == 2 and finest[0]["frames"].shape == (3, 3, 64, 192)
    assert "asked 3x" in caplog.text
    assert TripletDataset(seqs, 64, 192, loss_factor=2).loss_factor == 1
    with pytest.raises(ValueError, match=">= 1"):
        TripletDataset(seqs, 32, 96, loss_factor=0)

"""Turn the ``data`` config section into train / validation datasets."""
from __future__ import annotations

from pathlib import Path

from .folder import find_sequences, video_to_folder
from .sample import TripletDataset


def _sequences(data, path: str) -> list:
    if data.source == "folder":
        return find_sequences(path, data.intrinsics, data.stereo_dir)
    if data.source == "video":
        cache = Path(data.cache_dir or Path(path).with_suffix("")).expanduser()
        return find_sequences(video_to_folder(path, cache), data.intrinsics)
    raise ValueError(f"unknown data.source {data.source!r}; choose folder, video, bag, kitti or cityscapes")


def build_datasets(data, height: int, width: int, train) -> tuple[TripletDataset, TripletDataset | None]:
    """(train, val); val is None when the config names no validation data."""
    if not data.path:
        raise ValueError("data.path is not set (the folder, video or bag to train on)")
    loss_factor = 1 if train.supervised else train.photometric_resolution  # GT depth is at the input size
    common = dict(height=height, width=width, frame_ids=data.frame_ids, stride=data.stride,
                  stereo_baseline=data.stereo_baseline, seed=train.seed,
                  crop=(352, 1216) if data.kb_crop else None, loss_factor=loss_factor, cache_mb=data.frame_cache_mb)
    if data.source == "kitti":
        from .kitti import kitti_dataset_parts, warn_overlap
        if not data.split:
            raise ValueError("data.split is required for KITTI (e.g. splits/eigen_zhou/train_files.txt)")
        if data.test_split:
            warn_overlap(data.split, data.test_split)
        seqs, idx = kitti_dataset_parts(data.path, data.split, data.use_stereo)
        train_ds = TripletDataset(seqs, flip=train.flip, color_jitter=train.color_jitter, indices=idx, **common)
        return train_ds, None
    if data.source == "cityscapes":
        from .cityscapes import cityscapes_dataset_parts
        if not data.split:
            raise ValueError("data.split is required for Cityscapes (lines '<city> <frame>', e.g. train_files.txt)")
        seqs, idx = cityscapes_dataset_parts(data.path, data.split, data.frame_ids, data.stride)
        return TripletDataset(seqs, flip=train.flip, color_jitter=train.color_jitter, indices=idx, **common), None
    if data.source == "bag":
        from .bag import bag_sequences
        train_seqs, val_seqs = bag_sequences(data.path, data.image_topic, data.camera_info_topic, data.intrinsics,
                                             data.cache_dir, 0.0 if data.val_path else data.val_fraction,
                                             data.min_motion)
        if data.val_path:
            val_seqs = bag_sequences(data.val_path, data.image_topic, data.camera_info_topic, data.intrinsics,
                                     data.cache_dir, 0.0, data.min_motion)[0]
    else:
        train_seqs = _sequences(data, data.path)
        val_seqs = _sequences(data, data.val_path) if data.val_path else []
    train_ds = TripletDataset(train_seqs, flip=train.flip, color_jitter=train.color_jitter, **common)
    val_ds = TripletDataset(val_seqs, **common) if val_seqs else None
    return train_ds, val_ds

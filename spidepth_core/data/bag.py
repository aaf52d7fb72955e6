"""rosbag2 camera recordings (sqlite3 or mcap) with ``rosbags``: reading Image / CompressedImage / CameraInfo
for training, and writing camera streams (the sample recording, synthetic bags)."""
from __future__ import annotations

import logging
import shutil
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Iterable, Iterator

import cv2
import numpy as np

from ..cache import cache_dir as default_cache
from ..errors import first_line
from ..image_codec import message_to_rgb
from ..pinhole import valid_intrinsics

log = logging.getLogger("spidepth.data")

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
INFO_TYPE = "sensor_msgs/msg/CameraInfo"


def _typestore():
    from rosbags.typesys import Stores, get_typestore
    return get_typestore(Stores.LATEST)


def decode_image(msg) -> np.ndarray:
    """A deserialised Image or CompressedImage -> HxWx3 uint8 RGB."""
    return message_to_rgb(msg)


@contextmanager
def open_bag(path: str | Path) -> Iterator[Any]:
    """An open ``rosbags`` AnyReader. A bag that cannot be opened or read to its end (truncated, corrupt,
    not a bag) raises one ValueError naming it, instead of the reader's or the storage library's own error."""
    from rosbags.highlevel import AnyReader
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"bag not found: {path}")
    try:
        reader = AnyReader([path], default_typestore=_typestore())
        reader.open()
    except Exception as exc:
        raise ValueError(f"cannot open bag {path}: {first_line(exc)}") from exc
    try:
        yield reader
    except (ValueError, OSError):  # ours (a missing topic, a bad frame) or the disk's: already clear
        raise
    except Exception as exc:
        raise ValueError(f"bag {path} is truncated or corrupt: {first_line(exc)}") from exc
    finally:
        with suppress(Exception):
            reader.close()


def list_topics(path: str | Path) -> dict[str, str]:
    with open_bag(path) as reader:
        return {c.topic: c.msgtype for c in reader.connections}


def read_camera(path: str | Path, image_topic: str, info_topic: str | None = None
                ) -> Iterator[tuple[int, np.ndarray | None, np.ndarray | None, object]]:
    """Yields (stamp_ns, rgb or None, K or None, raw message) in recording order.

    Image messages give rgb; CameraInfo messages give K (None if zero). Raises with the bag's
    topic list when a topic is missing.
    """
    with open_bag(path) as reader:
        topics = {c.topic: c.msgtype for c in reader.connections}
        info_topic = info_topic or camera_info_beside(topics, image_topic)
        wanted = [t for t in (image_topic, info_topic) if t]
        for topic in wanted:
            if topic not in topics:
                listing = ", ".join(f"{t} ({m})" for t, m in sorted(topics.items()))
                raise ValueError(f"topic {topic!r} is not in {path}; it has: {listing}")
        if topics[image_topic] not in IMAGE_TYPES:
            raise ValueError(f"{image_topic} is {topics[image_topic]}, not an Image or CompressedImage")
        conns = [c for c in reader.connections if c.topic in wanted]
        for conn, stamp, raw in reader.messages(connections=conns):
            msg: Any = reader.deserialize(raw, conn.msgtype)
            if conn.topic == image_topic:
                yield stamp, decode_image(msg), None, msg
            else:
                K = np.asarray(msg.k, np.float64).reshape(3, 3)
                yield stamp, None, (K if valid_intrinsics(K) else None), msg


def camera_info_beside(topics: dict[str, str], image_topic: str) -> str | None:
    """The CameraInfo topic of ``image_topic``'s camera when none is named: the ``camera_info`` beside the
    image topic (image_pipeline's layout), if the recording has it."""
    beside = image_topic.rsplit("/", 1)[0] + "/camera_info"
    if topics.get(beside) != "sensor_msgs/msg/CameraInfo":
        return None
    log.info("camera intrinsics from %s (give --camera-info-topic for another)", beside)
    return beside


def find_bags(path: str | Path) -> list[Path]:
    """``path`` if it is a bag (folder with metadata.yaml, or an .mcap/.db3 file), else the bags inside it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"bag not found: {path}")
    if (path / "metadata.yaml").is_file() or path.suffix in (".mcap", ".db3"):
        return [path]
    bags = sorted(p for p in path.iterdir() if (p / "metadata.yaml").is_file())
    if not bags:
        raise ValueError(f"{path} is not a rosbag2 folder and holds none")
    return bags


def _thumb(rgb: np.ndarray) -> np.ndarray:
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return cv2.resize(gray, (80, max(8, 80 * gray.shape[0] // gray.shape[1])), interpolation=cv2.INTER_AREA)


DEPTH_MATCH_NS = 20_000_000  # a depth frame pairs with the image stamped within 20 ms of it


def _index_depth(bag: Path, depth_topic: str, folder: Path) -> np.ndarray:
    """Write every depth frame of ``depth_topic`` as <header stamp ns>.npy (metres); sorted stamps."""
    from ..image_codec import depth_to_metres
    folder.mkdir(parents=True, exist_ok=True)
    stamps = []
    with open_bag(bag) as reader:
        conns = [c for c in reader.connections if c.topic == depth_topic]
        if not conns:
            listing = ", ".join(sorted({c.topic for c in reader.connections}))
            raise ValueError(f"depth topic {depth_topic!r} is not in {bag}; it has: {listing}")
        for conn, _, raw in reader.messages(connections=conns):
            msg: Any = reader.deserialize(raw, conn.msgtype)
            stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
            depth = depth_to_metres(msg.encoding, msg.height, msg.width, msg.step, msg.data, msg.is_bigendian)
            np.save(folder / f"{stamp}.npy", depth)
            stamps.append(stamp)
    return np.array(sorted(stamps), dtype=np.int64)


def _take_depth(stamps: np.ndarray, folder: Path, header_stamp: int, target: Path) -> bool:
    """Move the depth frame stamped nearest ``header_stamp`` (within DEPTH_MATCH_NS) to ``target``."""
    if not len(stamps):
        return False
    i = int(np.argmin(np.abs(stamps - header_stamp)))
    source = folder / f"{stamps[i]}.npy"
    if abs(int(stamps[i]) - header_stamp) > DEPTH_MATCH_NS or not source.is_file():
        return False
    target.parent.mkdir(exist_ok=True)
    source.replace(target)
    return True


def decode_bag(bag: Path, out: Path, image_topic: str, info_topic: str | None, intrinsics: str | None,
               min_motion: float = 1.0, depth_topic: str | None = None) -> Path:
    """Decode a bag once into an image folder (skipping frames that barely differ from the last kept one).

    ``min_motion``: mean absolute grey-level change (0..255, on an 80-pixel-wide thumbnail) a frame
    needs over the previous kept frame. Writes frames, stamps.txt, intrinsics.yaml, then ``.complete``.
    With ``depth_topic`` (16UC1 mm or 32FC1 m), the depth frame paired by header stamp with each kept
    image goes to depth/<frame>.npy, the folder layout evaluation reads ground truth from.
    """
    import yaml
    from tqdm import tqdm

    from .intrinsics import load_intrinsics
    if (out / ".complete").is_file():
        log.info("%s: reusing its frames decoded earlier into %s (the bag's files are unchanged)", bag, out)
        return out
    out.mkdir(parents=True, exist_ok=True)
    by_stamp = out / ".depth_by_stamp"
    depth_stamps = _index_depth(bag, depth_topic, by_stamp) if depth_topic else np.zeros(0, np.int64)
    K = size = last = None
    stamps, seen, kept, paired = [], 0, 0, 0
    for stamp, rgb, K_msg, msg in tqdm(read_camera(bag, image_topic, info_topic), desc=f"decoding {bag.name}",
                                       unit="msg"):
        if rgb is None:
            if K is None and K_msg is not None:
                K = K_msg
            continue
        seen += 1
        if size is None:
            size = rgb.shape[:2]
        elif rgb.shape[:2] != size:
            raise ValueError(f"{bag}: image size changes from {size[1]}x{size[0]} to {rgb.shape[1]}x{rgb.shape[0]}")
        thumb = _thumb(rgb).astype(np.float32)
        if last is not None and np.abs(thumb - last).mean() < min_motion:
            continue
        last = thumb
        cv2.imwrite(str(out / f"{kept:06d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        header = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        paired += _take_depth(depth_stamps, by_stamp, header, out / "depth" / f"{kept:06d}.npy")
        stamps.append(stamp)
        kept += 1
    if seen == 0 or size is None:
        raise ValueError(f"no images on {image_topic} in {bag}")
    if depth_topic and paired == 0:
        raise ValueError(f"{bag}: no depth frame on {depth_topic} is stamped like an image on {image_topic}")
    shutil.rmtree(by_stamp, ignore_errors=True)
    if intrinsics:
        K, k_size = load_intrinsics(intrinsics)
        if k_size is not None and tuple(k_size) != tuple(size):
            from ..pinhole import resize_intrinsics
            K = resize_intrinsics(K, k_size, size)
    if K is None:
        raise ValueError(f"{bag}: no CameraInfo with a valid K{' on ' + info_topic if info_topic else ''} "
                         f"and no intrinsics YAML given")
    np.savetxt(out / "stamps.txt", np.array(stamps, dtype=np.int64), fmt="%d")
    (out / "intrinsics.yaml").write_text(yaml.safe_dump(dict(
        fx=float(K[0, 0]), fy=float(K[1, 1]), cx=float(K[0, 2]), cy=float(K[1, 2]), height=int(size[0]),
        width=int(size[1]), source=str(bag), frames_seen=seen, frames_kept=kept, depth_frames=paired)))
    (out / ".complete").touch()
    return out


def bag_fingerprint(bag: Path) -> str:
    """What identifies a recording's contents cheaply: each file's name, size and modification time, and a
    digest of its metadata.yaml; a bag re-recorded at the same path gets a new fingerprint (and cache)."""
    import hashlib
    files = sorted(p for p in bag.rglob("*") if p.is_file()) if bag.is_dir() else [bag]
    h = hashlib.sha256()
    for f in files:
        stat = f.stat()
        h.update(f"{f.relative_to(bag) if bag.is_dir() else f.name}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
        if f.name == "metadata.yaml":
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


class SubSequence:
    """Frames [start, stop) of a sequence (used for the time split)."""

    def __init__(self, seq, start: int, stop: int) -> None:
        self.seq, self.start, self.stop = seq, start, stop
        self.K, self.size = seq.K, seq.size

    def __len__(self) -> int:
        return self.stop - self.start

    def image(self, i: int) -> np.ndarray:
        return self.seq.image(self.start + i)

    def depth(self, i: int):
        return self.seq.depth(self.start + i)

    def stereo(self, i: int):
        return None


def bag_sequences(path: str | Path, image_topic: str | None, info_topic: str | None = None,
                  intrinsics: str | None = None, cache_dir: str | None = None, val_fraction: float = 0.0,
                  min_motion: float = 1.0, depth_topic: str | None = None) -> tuple[list, list]:
    """(train, val) sequences from one or more bags; the last ``val_fraction`` of each bag (in time) is val."""
    import hashlib

    from .folder import FolderSequence
    if not image_topic:
        raise ValueError("data.image_topic is required for bags (e.g. /camera/image_raw)")
    train: list[FolderSequence | SubSequence] = []
    val: list[FolderSequence | SubSequence] = []
    for bag in find_bags(path):
        key = f"{bag.resolve()}|{bag_fingerprint(bag)}|{image_topic}|{info_topic}|{intrinsics}|{min_motion}"
        tag = hashlib.sha256((key + (f"|{depth_topic}" if depth_topic else "")).encode())
        cache = Path(cache_dir or default_cache("bags")) / f"{bag.name}-{tag.hexdigest()[:10]}"
        seq = FolderSequence(decode_bag(bag, cache, image_topic, info_topic, intrinsics, min_motion, depth_topic))
        n_val = int(round(len(seq) * val_fraction))
        if n_val >= 3 and len(seq) - n_val >= 3:
            train.append(SubSequence(seq, 0, len(seq) - n_val))
            val.append(SubSequence(seq, len(seq) - n_val, len(seq)))
        else:
            train.append(seq)
    return train, val


# -- writing ---------------------------------------------------------------------
def _header(ts, stamp_ns: int, frame_id: str):
    Time = ts.types["builtin_interfaces/msg/Time"]
    Header = ts.types["std_msgs/msg/Header"]
    return Header(stamp=Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9), frame_id=frame_id)


def _camera_info_msg(ts, K: np.ndarray, height: int, width: int, stamp_ns: int, frame_id: str):
    P = np.zeros((3, 4))
    P[:, :3] = K
    return ts.types["sensor_msgs/msg/CameraInfo"](
        header=_header(ts, stamp_ns, frame_id), height=height, width=width, distortion_model="plumb_bob",
        d=np.zeros(5), k=np.asarray(K, np.float64).reshape(-1), r=np.eye(3).reshape(-1), p=P.reshape(-1),
        binning_x=0, binning_y=0,
        roi=ts.types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                         do_rectify=False))


def _image_msg(ts, rgb: np.ndarray, stamp_ns: int, frame_id: str, encoding: str = "rgb8"):
    h, w = rgb.shape[:2]
    data = rgb[..., ::-1] if encoding == "bgr8" else rgb
    return ts.types["sensor_msgs/msg/Image"](
        header=_header(ts, stamp_ns, frame_id), height=h, width=w, encoding=encoding, is_bigendian=0,
        step=w * 3, data=np.ascontiguousarray(data).reshape(-1))


def _depth_msg(ts, depth: np.ndarray, stamp_ns: int, frame_id: str, encoding: str):
    """Metres (0 or NaN invalid) -> a depth Image: 16UC1 millimetres or 32FC1 metres."""
    h, w = depth.shape
    if encoding == "16UC1":  # 0: no reading, as beyond 65.535 m, where millimetres no longer fit
        mm = np.round(np.nan_to_num(depth.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0) * 1000.0)
        px = np.where((mm > 0) & (mm <= 65535), mm, 0).astype("<u2")
    elif encoding == "32FC1":
        px = np.where(np.isfinite(depth) & (depth > 0), depth, np.nan).astype("<f4")
    else:
        raise ValueError(f"depth encoding must be 16UC1 or 32FC1, got {encoding!r}")
    return ts.types["sensor_msgs/msg/Image"](
        header=_header(ts, stamp_ns, frame_id), height=h, width=w, encoding=encoding, is_bigendian=0,
        step=w * px.itemsize, data=np.frombuffer(px.tobytes(), np.uint8))


def write_camera_bag(path: str | Path, frames: Iterable[np.ndarray], K: np.ndarray, fps: float = 10.0,
                     storage: str = "sqlite3", image_topic: str = "/camera/image_raw",
                     info_topic: str = "/camera/camera_info", frame_id: str = "camera_optical_frame",
                     encoding: str = "rgb8", distro: str = "ROS2_HUMBLE",
                     start_ns: int = 1_700_000_000 * 10**9, depths: Iterable[np.ndarray] | None = None,
                     depth_topic: str = "/camera/depth/image", depth_encoding: str = "32FC1") -> Path:
    """Write RGB frames (HxWx3 uint8) and matching CameraInfo at ``fps`` into a new rosbag2 folder.

    ``storage`` is sqlite3 or mcap; ``distro`` names the message definitions (rosbags' ``Stores``).
    ``depths`` (metres, one per frame) adds a depth topic as an RGB-D camera records it.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore
    storages = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}
    if storage not in storages:
        raise ValueError(f"storage must be one of {sorted(storages)}, got {storage!r}")
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"bag already exists: {path}")
    ts = get_typestore(Stores[distro])
    with Writer(path, version=8, storage_plugin=storages[storage]) as writer:
        img_conn = writer.add_connection(image_topic, "sensor_msgs/msg/Image", typestore=ts)
        info_conn = writer.add_connection(info_topic, "sensor_msgs/msg/CameraInfo", typestore=ts)
        depth_conn = (writer.add_connection(depth_topic, "sensor_msgs/msg/Image", typestore=ts)
                      if depths is not None else None)
        depth_iter = iter(depths) if depths is not None else None
        for i, rgb in enumerate(frames):
            stamp = start_ns + int(round(i * 1e9 / fps))
            # camera_info first, as camera drivers publish it: a node playing the bag has it for the image
            info = _camera_info_msg(ts, K, rgb.shape[0], rgb.shape[1], stamp, frame_id)
            writer.write(info_conn, stamp, ts.serialize_cdr(info, info.__msgtype__))
            msg = _image_msg(ts, rgb, stamp, frame_id, encoding)
            writer.write(img_conn, stamp, ts.serialize_cdr(msg, msg.__msgtype__))
            if depth_conn is not None and depth_iter is not None:
                depth = _depth_msg(ts, next(depth_iter), stamp, frame_id, depth_encoding)
                writer.write(depth_conn, stamp, ts.serialize_cdr(depth, depth.__msgtype__))
    return path

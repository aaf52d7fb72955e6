"""depth_node: camera images in; depth (32FC1), depth/camera_info, depth/colored, points, /diagnostics out."""
from __future__ import annotations

import re
import threading
import time
from collections import deque
from typing import Callable

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

try:  # the class was renamed after Humble
    from rclpy.qos_overriding_options import QoSOverridingOptions
except ImportError:  # pragma: no cover - Humble
    from rclpy.qos_overriding_options import QosOverridingOptions as QoSOverridingOptions  # type: ignore
from rclpy.subscription import Subscription
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

from spidepth_core.camera_check import IntrinsicsGuard
from spidepth_core.errors import first_line
from spidepth_core.imaging import resize_area
from spidepth_core.inference import Predictor, validate_model_file
from spidepth_core.inference.predictor import NO_UNCERTAINTY
from spidepth_core.pinhole import resize_intrinsics
from spidepth_core.pipeline import DepthPolicy, fallback_intrinsics
from spidepth_core.pointcloud import decimate, depth_to_points, pack_cloud
from spidepth_core.scale import ScaleEstimator
from spidepth_core.shipped import model_file
from spidepth_core.viz import colorize_depth

from . import conversions as conv
from .params import PARAMETERS, check_choice, descriptor

_HAS_MESSAGE_INFO = hasattr(Subscription, "CallbackType")  # rclpy >= Iron passes MessageInfo
# Keep only the newest image: frames that arrive during inference replace each other in the reader
# and the next callback gets the newest one.
def image_qos() -> QoSProfile:
    """Best effort (takes both reliable and best-effort cameras), depth 1 (the newest frame only)."""
    return QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)


ERROR_LOG_PERIOD = 5.0  # seconds between two log lines for the same bad-frame reason


def _seconds(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


class _Rate:
    """Events per second, from the events of the last ``window`` seconds."""

    def __init__(self, window: float = 3.0) -> None:
        self.window = window
        self.times: deque[float] = deque()

    def tick(self, n: int = 1) -> None:
        self.times.extend([time.monotonic()] * n)

    def hz(self) -> float:
        """Over the events of the window: (events - 1) / their time span; 0 with fewer than two."""
        now = time.monotonic()
        while self.times and now - self.times[0] > self.window:
            self.times.popleft()
        span = self.times[-1] - self.times[0] if len(self.times) > 1 else 0.0
        return (len(self.times) - 1) / span if span > 0 else 0.0


class DepthNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("depth_node", **kwargs)
        for name, spec in PARAMETERS.items():
            self.declare_parameter(name, spec[0], descriptor(name))
        self.p = {name: self.get_parameter(name).value for name in PARAMETERS}
        for name in PARAMETERS:
            error = check_choice(name, self.p[name])
            if error:
                raise ValueError(error)
        self.predictor = self._load(self.p["model_path"])
        self.model_status = "ok"
        self._swap_lock = threading.Lock()
        self._swapping: str | None = None  # the model_path being loaded in the background
        self.policy = self._make_policy(self.p)
        self._last_seq: dict = {}
        self._make_io()
        self._info: tuple[CameraInfo, np.ndarray, float] | None = None  # message, its K, arrival
        self._infos: deque[tuple[CameraInfo, np.ndarray]] = deque(maxlen=30)  # recent ones, for exact sync
        self._pending: tuple | None = None  # exact sync: the newest image still waiting for its camera_info
        self.unmatched = self.stale = self.refused_info = 0
        self._guard = IntrinsicsGuard()
        self._newest_arrival = float("-inf")  # arrival time of the newest frame processed
        self._said: set[str] = set()  # warnings given once
        self.rates = {"in": _Rate(), "out": _Rate()}
        self.latencies: deque = deque(maxlen=50)
        self.dropped = self.errors = 0
        self.last_error = ""
        self.idle = False
        self._error_said: dict[str, float] = {}  # reason -> when it was last logged
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.create_timer(1.0, self._publish_diagnostics)

    # -- setup -----------------------------------------------------------------
    def _make_io(self) -> None:
        reliability = (ReliabilityPolicy.RELIABLE if self.p["reliability"] == "reliable"
                       else ReliabilityPolicy.BEST_EFFORT)
        # REP 2003: each topic's QoS can be overridden from a parameters file (qos_overrides./depth.publisher...).
        # rclpy applies an override to the profile object itself, so every entity gets its own profile.
        overrides = QoSOverridingOptions.with_default_policies()

        def publisher(kind, topic: str):
            qos = QoSProfile(depth=2, reliability=reliability)
            return self.create_publisher(kind, topic, qos, qos_overriding_options=overrides)

        self.pub_depth = publisher(Image, "depth")
        self.pub_info = publisher(CameraInfo, "depth/camera_info")
        self.pub_colored = publisher(Image, "depth/colored")
        self.pub_points = publisher(PointCloud2, "points")
        self.pub_uncertainty = publisher(Image, "depth/uncertainty")
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        # Inference runs in the callback: a thread hand-off cost about 0.5 ms per frame (spidepth_ros.bench).
        callback: Callable[..., None] = self._on_image if _HAS_MESSAGE_INFO else self._on_image_only
        if self.p["use_compressed"]:
            self.create_subscription(CompressedImage, "image/compressed", callback, image_qos(),
                                     qos_overriding_options=overrides)
        else:
            self.create_subscription(Image, "image", callback, image_qos(), qos_overriding_options=overrides)
        self.create_subscription(CameraInfo, "camera_info", self._on_info, qos_profile_sensor_data)

    def _load(self, path: str) -> Predictor:
        predictor = Predictor(path or None, self.p["backend"], self.p["device"] or None)
        predictor.warm_up()  # a file that loads but cannot run fails here, not on every camera frame
        self.get_logger().info(f"model {predictor.model_path} on {predictor.backend.name} "
                               f"({predictor.backend_reason}), input {predictor.input_size}")
        return predictor

    def _swap_model(self, path: str, previous: str) -> None:
        """Background load; frames keep flowing on the old model until the new one is ready."""
        swapped = False
        try:
            new = self._load(path)
        except Exception as exc:
            self.model_status = f"swap to {path} failed: {first_line(exc)}"
            self.get_logger().error(f"model swap failed, keeping the old model: {first_line(exc)}")
        else:
            self.predictor = new  # one reference assignment: the worker picks it up on its next frame
            self.model_status = f"swapped to {path}"
            self.get_logger().info(f"now serving {path}")
            swapped = True
        with self._swap_lock:
            self._swapping = None
        if not swapped:
            self.set_parameters([Parameter("model_path", value=previous)])  # the parameter names the served model

    def _start_swap(self, path: str) -> str | None:
        """Reason to reject the new model_path, or None after starting the background load."""
        try:
            validate_model_file(model_file(path), self.p["backend"], self.p["device"] or None)
        except (OSError, ValueError, RuntimeError) as exc:
            return f"model_path rejected, keeping the current model: {first_line(exc)}"
        with self._swap_lock:  # _on_set_parameters saw no swap in progress; only a swap thread clears this
            self._swapping = path
        threading.Thread(target=self._swap_model, args=(path, self.p["model_path"]), daemon=True).start()
        return None

    @staticmethod
    def _make_policy(p: dict, scale: ScaleEstimator | None = None) -> DepthPolicy:
        """The depth policy of parameters ``p``; ``scale``: keep this running scale estimate."""
        if scale is None:
            scale = ScaleEstimator(p["scale_policy"], p["depth_scale"], p["camera_height"], p["scale_smoothing"],
                                   pitch=p["camera_pitch"])
        return DepthPolicy(scale, p["min_depth"], p["max_depth"], p["output_size"])

    def _on_set_parameters(self, params) -> SetParametersResult:
        new = dict(self.p)
        for param in params:
            error = check_choice(param.name, param.value) if param.name in PARAMETERS else None
            if error:
                return SetParametersResult(successful=False, reason=error)
            new[param.name] = param.value
        if new["min_depth"] >= new["max_depth"]:
            return SetParametersResult(successful=False, reason="min_depth must be below max_depth")
        # Last, once everything else in this call is accepted: a rejected update must not swap the model.
        path = new["model_path"]
        if path != self.p["model_path"]:
            with self._swap_lock:
                busy = self._swapping
            if busy is not None:  # the parameter must keep naming what will be served
                return SetParametersResult(successful=False, reason=f"a model swap to {busy!r} is in progress; "
                                           "set model_path again when it has finished")
            if str(self.predictor.model_path) != str(model_file(path)):
                reason = self._start_swap(path)
                if reason:
                    return SetParametersResult(successful=False, reason=reason)
        if new["camera_info_sync"] != "exact" and self._pending is not None:
            self._pending = None  # an image waiting for its camera_info would now come out after newer ones
            self.unmatched += 1
        if any(new[k] != self.p[k] for k in ("scale_policy", "depth_scale", "camera_height", "scale_smoothing",
                                             "camera_pitch")):
            self.policy = self._make_policy(new)
        else:  # the range and output size change; the scale estimate carries on
            self.policy = self._make_policy(new, self.policy.scale)
        self.p = new
        return SetParametersResult(successful=True)

    # -- input -------------------------------------------------------------------
    def _on_image(self, msg, info: dict | None) -> None:
        missed = self._missed(info)
        self.dropped += missed
        self.rates["in"].tick(1 + missed)
        if self._idle_now():
            return
        if self.p["camera_info_sync"] == "exact":
            self._sync_exact(msg, time.monotonic())
        else:
            self._handle(msg, time.monotonic())

    def _sync_exact(self, msg, arrived: float) -> None:
        """Process the image with the camera_info of its stamp; without one yet, it waits for it (newest only)."""
        entry = self._info_for(msg.header.stamp)
        if entry is None:
            if self._pending is not None:
                self.unmatched += 1  # replaced before its camera_info came
            self._pending = (msg, arrived)
            return
        self._handle(msg, arrived, entry)

    def _info_for(self, stamp) -> tuple[CameraInfo, np.ndarray] | None:
        """The recent camera_info whose stamp is within camera_info_tolerance of ``stamp``."""
        t = _seconds(stamp)
        best = min(self._infos, key=lambda e: abs(_seconds(e[0].header.stamp) - t), default=None)
        if best is None or abs(_seconds(best[0].header.stamp) - t) > self.p["camera_info_tolerance"]:
            return None
        return best

    def _idle_now(self) -> bool:
        """No one subscribes to any output: skip the network (robots share one computer among many nodes)."""
        outputs = (self.pub_depth, self.pub_info, self.pub_colored, self.pub_points, self.pub_uncertainty)
        idle = all(pub.get_subscription_count() == 0 for pub in outputs)
        if idle != self.idle:
            self.get_logger().info("no subscribers: idle, not running the network" if idle
                                   else "a subscriber appeared: running the network again")
            self.idle = idle
        return idle

    def _on_image_only(self, msg) -> None:
        """rclpy without message info (Humble): dropped frames cannot be counted."""
        self._on_image(msg, None)

    def _missed(self, info: dict | None) -> int:
        """Frames the publisher sent since its last one that reached us (replaced by newer ones)."""
        info = info or {}
        seq = info.get("publication_sequence_number")
        if not seq:
            return 0
        key = str(info.get("publisher_gid"))
        last, self._last_seq[key] = self._last_seq.get(key), seq
        return seq - last - 1 if last is not None and seq > last else 0

    def _on_info(self, msg: CameraInfo) -> None:
        K = conv.camera_info_K(msg)
        if K is None:
            return
        self._info = (msg, K, time.monotonic())
        self._infos.append((msg, K))
        if self._pending is not None and self.p["camera_info_sync"] == "exact":  # the image that waited for it
            entry = self._info_for(self._pending[0].header.stamp)
            if entry is not None:
                (image, arrived), self._pending = self._pending, None
                self._handle(image, arrived, entry)

    def _intrinsics(self, hw: tuple[int, int],
                    entry: tuple[CameraInfo, np.ndarray] | None = None) -> tuple[np.ndarray, CameraInfo | None]:
        """K for an image of size hw: from ``entry`` (exact sync), else the newest camera_info if fresh, else
        the fallback parameters."""
        if entry is None and self._info is not None and \
                time.monotonic() - self._info[2] <= self.p["camera_info_timeout"]:
            entry = self._info[:2]
        if entry is not None:
            info, K = entry
            if (info.height, info.width) != hw and info.height and info.width:
                K = resize_intrinsics(K, (info.height, info.width), hw)
            problem = self._guard.accept(K, hw)
            if problem is None:
                return K, info
            self.refused_info += 1
            self._log_throttled(f"camera_info refused: {problem}")
            good = self._guard.last_good(hw)
            if good is not None:
                return good, None
        K = fallback_intrinsics(hw, self.p["fx"], self.p["fy"], self.p["cx"], self.p["cy"])
        values = f"fx={K[0, 0]:.1f} fy={K[1, 1]:.1f} cx={K[0, 2]:.1f} cy={K[1, 2]:.1f}"
        if self.p["fx"] or self.p["fy"]:
            self._warn_once(f"no usable camera_info: using the intrinsics parameters {values}")
        else:
            self._warn_once(f"no usable camera_info and no fx/fy parameters: assuming KITTI's normalised camera "
                            f"({values}; fx 0.58 W, fy 1.92 H). Metric depth and points are right only for such a "
                            "camera: remap camera_info or set fx, fy, cx, cy")
        return K, None

    def _warn_once(self, text: str) -> None:
        if text not in self._said and len(self._said) < 100:
            self._said.add(text)
            self.get_logger().warning(text)

    # -- work ----------------------------------------------------------------------
    def _handle(self, msg, arrived: float, entry: tuple[CameraInfo, np.ndarray] | None = None) -> None:
        if arrived < self._newest_arrival:  # a newer frame is out already: time must not go backwards on depth
            self.stale += 1
            return
        self._newest_arrival = arrived
        try:
            self.process(msg, arrived, entry)
        except ValueError as exc:
            self._bad_frame(f"dropped a frame: {first_line(exc)}")
        except Exception as exc:  # keep serving; report what happened
            self._bad_frame(f"frame failed: {type(exc).__name__}: {first_line(exc)}")

    def _bad_frame(self, text: str) -> None:
        """Count it, keep it for /diagnostics, and log each distinct reason at most every 5 s."""
        self.errors += 1
        self.last_error = text
        self._log_throttled(text)

    def _log_throttled(self, text: str) -> None:
        """Log ``text`` unless the same reason (numbers aside) was logged in the last 5 s."""
        reason = re.sub(r"\d+", "#", text)  # sizes and lengths vary; the reason does not
        now = time.monotonic()
        if now - self._error_said.get(reason, -1e9) >= ERROR_LOG_PERIOD:
            if len(self._error_said) > 100:
                self._error_said.clear()
            self._error_said[reason] = now
            self.get_logger().error(text)

    def process(self, msg, arrived: float, entry: tuple[CameraInfo, np.ndarray] | None = None) -> None:
        """Depth for one image; ``entry`` is its (camera_info, K) under exact sync."""
        rgb = conv.image_to_rgb(msg, self.p["max_image_pixels"])
        K_in, info = self._intrinsics(rgb.shape[:2], entry)
        points = self.pub_points.get_subscription_count() > 0
        publish_spread = self.pub_uncertainty.get_subscription_count() > 0
        want_spread = publish_spread or (points and self.p["point_max_relative_uncertainty"] > 0)
        result = self.policy.run(self.predictor, rgb, K_in, uncertainty=want_spread)
        depth, K, spread = result.depth, result.K, result.uncertainty
        assert K is not None  # DepthPolicy.run raises rather than return no K
        if want_spread and spread is None:
            self._warn_once(f"{self.predictor.model_path} {NO_UNCERTAINTY}: depth/uncertainty stays silent and "
                            "points are not filtered by it")
        header = msg.header
        self.pub_depth.publish(conv.depth_to_msg(depth, header))
        self.pub_info.publish(conv.scaled_camera_info(K_in, rgb.shape[:2], depth.shape, header, info))
        if publish_spread and spread is not None:
            self.pub_uncertainty.publish(conv.depth_to_msg(spread, header))
        if self.pub_colored.get_subscription_count() > 0:
            self.pub_colored.publish(conv.rgb_to_msg(colorize_depth(depth), header))
        if points:
            small = resize_area(rgb, depth.shape) if self.p["point_color"] else None
            self.pub_points.publish(conv.cloud_to_msg(self.cloud(depth, K, small, spread), header))
        self.latencies.append(time.monotonic() - arrived)
        self.rates["out"].tick()

    def cloud(self, depth: np.ndarray, K: np.ndarray, rgb: np.ndarray | None,
              spread: np.ndarray | None = None) -> np.ndarray:
        """Organised points; NaN beyond point_max_range and, with an uncertainty map, where
        uncertainty / depth exceeds point_max_relative_uncertainty (> 0)."""
        step = self.p["point_decimation"]
        d, Kd = decimate(depth, K, step)
        drop = d > self.p["point_max_range"]
        limit = self.p["point_max_relative_uncertainty"]
        if spread is not None and limit > 0:
            with np.errstate(invalid="ignore"):
                drop |= spread[::step, ::step] > limit * d
        d = np.where(drop, np.nan, d)
        colors = rgb[::step, ::step] if rgb is not None else None
        return pack_cloud(depth_to_points(d, Kd), colors)

    # -- diagnostics -------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        in_hz, out_hz = self.rates["in"].hz(), self.rates["out"].hz()
        latency = 1000 * float(np.mean(self.latencies)) if self.latencies else float("nan")
        status = DiagnosticStatus(name=f"{self.get_name()}: depth", hardware_id=self.predictor.backend.name)
        stalled = in_hz > 0 and out_hz == 0 and not self.idle
        status.level = DiagnosticStatus.WARN if stalled else DiagnosticStatus.OK
        status.message = ("no output while images arrive" if stalled
                          else "idle: no subscribers" if self.idle else "ok")
        values = {"input_rate_hz": f"{in_hz:.2f}", "output_rate_hz": f"{out_hz:.2f}", "latency_ms": f"{latency:.1f}",
                  "backend": self.predictor.backend.name, "dropped_frames": str(self.dropped),
                  "bad_frames": str(self.errors), "unmatched_frames": str(self.unmatched),
                  "stale_frames": str(self.stale), "refused_camera_info": str(self.refused_info),
                  "scale_policy": self.p["scale_policy"],
                  "scale": f"{self.policy.scale.scale:.4f}", "model": str(self.predictor.model_path),
                  "model_status": self.model_status, "last_error": self.last_error}
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        arr = DiagnosticArray(status=[status])
        arr.header.stamp = self.get_clock().now().to_msg()
        self.pub_diag.publish(arr)


def main(args=None) -> None:
    rclpy.init(args=args)
    node = None
    try:
        node = DepthNode()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except ValueError as exc:
        print(f"depth_node: {exc}")
        raise SystemExit(2) from exc
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


if __name__ == "__main__":
    main()

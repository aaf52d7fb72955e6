"""The CUDA runtime for TensorRT engines, through NVIDIA's cuda-python bindings (no PyTorch).

Device memory, a stream and host<->device copies: all the TensorRT backend needs. cuda-python 12.6 and later
name the module ``cuda.bindings.runtime``; older releases ``cuda.cudart``. Every call returns
``(error, *values)``; ``_check`` turns an error into an exception that names the call.
"""
from __future__ import annotations

from types import ModuleType

import numpy as np

INSTALL = "pip install cuda-python (or: pip install .[tensorrt])"


def import_cudart() -> ModuleType:
    try:
        from cuda.bindings import runtime
    except ImportError:
        try:
            from cuda import cudart as runtime  # cuda-python before 12.6
        except ImportError as exc:
            raise RuntimeError(f"the TensorRT backend needs NVIDIA's CUDA runtime bindings: {INSTALL}") from exc
    return runtime


def _check(cudart: ModuleType, what: str, result: tuple):
    error, *values = result
    if error != cudart.cudaError_t.cudaSuccess:
        raise RuntimeError(f"CUDA {what} failed: {error.name if hasattr(error, 'name') else error}")
    return values[0] if len(values) == 1 else tuple(values)


def gpu_count() -> int:
    """CUDA GPUs visible to this process (0 without a driver or a GPU)."""
    cudart = import_cudart()
    error, count = cudart.cudaGetDeviceCount()
    return int(count) if error == cudart.cudaError_t.cudaSuccess else 0


def device_index(device: str | None) -> int:
    """0 for None, "cuda" or "cuda:0"; N for "cuda:N"."""
    if device in (None, "cuda"):
        return 0
    if not device.startswith("cuda:") or not device[5:].isdigit():
        raise ValueError(f"a CUDA device looks like cuda or cuda:N, got {device!r}")
    return int(device[5:])


def gpu_identity(index: int = 0) -> tuple[str, tuple[int, int]]:
    """(name, compute capability) of GPU ``index``; raises where none is visible."""
    if index >= gpu_count():
        raise RuntimeError(f"the TensorRT backend needs a CUDA GPU; GPU {index} is not visible")
    cudart = import_cudart()
    props = _check(cudart, "cudaGetDeviceProperties", cudart.cudaGetDeviceProperties(index))
    name = props.name.split(b"\0", 1)[0].decode() if isinstance(props.name, bytes) else str(props.name)
    return name, (int(props.major), int(props.minor))


class DeviceBuffers:
    """One device buffer per named tensor (its shape and NumPy dtype), a stream, and the copies between host
    and device."""

    def __init__(self, tensors: dict[str, tuple[tuple[int, ...], np.dtype]], index: int = 0) -> None:
        self.cudart = import_cudart()
        _check(self.cudart, "cudaSetDevice", self.cudart.cudaSetDevice(index))
        self.stream = _check(self.cudart, "cudaStreamCreate", self.cudart.cudaStreamCreate())
        self.shapes = {name: tuple(shape) for name, (shape, _) in tensors.items()}
        self.dtypes = {name: np.dtype(dtype) for name, (_, dtype) in tensors.items()}
        self.pointers: dict[str, int] = {}
        for name, shape in self.shapes.items():
            nbytes = int(np.prod(shape)) * self.dtypes[name].itemsize
            self.pointers[name] = int(_check(self.cudart, "cudaMalloc", self.cudart.cudaMalloc(nbytes)))

    @property
    def stream_handle(self) -> int:
        return int(self.stream)

    def upload(self, name: str, array: np.ndarray) -> None:
        host = np.ascontiguousarray(array, dtype=self.dtypes[name])
        if host.shape != self.shapes[name]:
            raise ValueError(f"{name} is {self.shapes[name]} on the device, got {host.shape}")
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        _check(self.cudart, "cudaMemcpyAsync", self.cudart.cudaMemcpyAsync(
            self.pointers[name], host.ctypes.data, host.nbytes, kind, self.stream))
        self.synchronize()  # ``host`` may be a temporary: the copy must finish before it goes

    def download(self, name: str) -> np.ndarray:
        host = np.empty(self.shapes[name], self.dtypes[name])
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        _check(self.cudart, "cudaMemcpyAsync", self.cudart.cudaMemcpyAsync(
            host.ctypes.data, self.pointers[name], host.nbytes, kind, self.stream))
        self.synchronize()
        return host

    def synchronize(self) -> None:
        _check(self.cudart, "cudaStreamSynchronize", self.cudart.cudaStreamSynchronize(self.stream))

    def close(self) -> None:
        for pointer in self.pointers.values():
            self.cudart.cudaFree(pointer)
        self.pointers = {}
        if self.stream is not None:
            self.cudart.cudaStreamDestroy(self.stream)
            self.stream = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: the runtime may already be gone
            pass

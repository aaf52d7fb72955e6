"""Export, onnxruntime parity, the Predictor, and the TensorRT layer as far as a CPU allows."""
import json
import shutil
import sys

import numpy as np
import onnx
import pytest

from spidepth_core.cli import main
from spidepth_core.export import TENSORRT_OPS, export_onnx, graph_ops
from spidepth_core.files import file_sha256
from spidepth_core.inference import Predictor
from spidepth_core.inference import tensorrt as trt_mod
from spidepth_core.inference.parity import check_parity


@pytest.fixture(scope="module")
def exported(tiny_checkpoint, tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    ckpt = folder / "tiny.pt"
    shutil.copyfile(tiny_checkpoint, ckpt)
    return ckpt, export_onnx(ckpt, ckpt.with_suffix(".onnx"))


def test_onnx_io_metadata_and_ops(exported):
    ckpt, path = exported
    model = onnx.load(str(path))
    assert [i.name for i in model.graph.input] == ["image"]
    assert [o.name for o in model.graph.output] == ["depth", "uncertainty"]
    for output in model.graph.output:
        assert [d.dim_value for d in output.type.tensor_type.shape.dim] == [1, 1, 64, 192]
    meta = json.loads({p.key: p.value for p in model.metadata_props}["spidepth"])
    assert meta["input_size"] == [64, 192] and meta["depth_range"] == [1e-3, 80.0]
    assert meta["checkpoint_sha256"] == file_sha256(ckpt)
    assert graph_ops(path) <= TENSORRT_OPS
    assert min(op.version for op in model.opset_import if op.domain in ("", "ai.onnx")) >= 17


def test_onnxruntime_matches_pytorch(exported):
    ckpt, path = exported
    diff = check_parity(ckpt, path)
    assert diff["max_abs"] < 1e-3 and diff["max_rel"] < 1e-4


def test_export_command_other_size_and_fp16(tiny_checkpoint, tmp_path, capsys):
    assert main(["export", str(tiny_checkpoint), "--onnx", str(tmp_path / "a.onnx"), "--height", "128",
                 "--width", "384"]) == 0
    assert "max rel" in capsys.readouterr().out
    assert main(["export", str(tiny_checkpoint), "--onnx", str(tmp_path / "h.onnx"), "--fp16"]) == 0
    assert main(["export", str(tiny_checkpoint), "--onnx", str(tmp_path / "b.onnx"), "--height", "8",
                 "--width", "8"]) == 2


def test_predictor_backends_agree(exported):
    ckpt, path = exported
    image = np.random.default_rng(0).integers(0, 255, (100, 300, 3), dtype=np.uint8)
    K = np.array([[150.0, 0, 150], [0, 150, 50], [0, 0, 1]])
    torch_out = Predictor(ckpt, "torch").predict(image, K)
    ort = Predictor(path, "auto")
    assert ort.backend.name == "onnxruntime"
    ort_out = ort.predict(image, K)
    assert torch_out.depth.shape == (100, 300) and torch_out.depth.dtype == np.float32
    assert np.allclose(torch_out.depth, ort_out.depth, rtol=1e-4, atol=1e-3)
    model_res = ort.predict(image, K, output_size="model")
    assert model_res.depth.shape == (64, 192)
    assert np.allclose(model_res.K, [[150 * 192 / 300, 0, 150 * 192 / 300], [0, 150 * 64 / 100, 50 * 64 / 100],
                                     [0, 0, 1]])
    bgr = ort.predict(image[..., ::-1].copy(), K, bgr=True)
    assert np.allclose(bgr.depth, ort_out.depth)
    # K rescales depth from the model's canonical camera (fy = 1.92 H) to this one (fy = 1.5 H)
    canonical = ort.predict(image)
    assert np.allclose(ort_out.depth, canonical.depth * (1.5 / 1.92), rtol=1e-6)


def test_uncertainty_is_the_same_on_every_backend_and_optional(exported, tmp_path):
    ckpt, path = exported
    image = np.random.default_rng(3).integers(0, 255, (100, 300, 3), dtype=np.uint8)
    torch_out = Predictor(ckpt, "torch").predict(image, uncertainty=True)
    ort_out = Predictor(path, "onnxruntime").predict(image, uncertainty=True)
    assert torch_out.uncertainty is not None and ort_out.uncertainty is not None
    assert torch_out.uncertainty.shape == (100, 300) and (torch_out.uncertainty > 0).all()
    assert np.allclose(torch_out.uncertainty, ort_out.uncertainty, rtol=1e-4, atol=1e-3)
    assert np.allclose(torch_out.depth, ort_out.depth, rtol=1e-4, atol=1e-3)
    assert Predictor(path, "onnxruntime").predict(image).uncertainty is None  # only when asked for
    # an ONNX file exported before the output existed still runs; it simply has no uncertainty
    old = onnx.load(str(path))
    keep = [o for o in old.graph.output if o.name == "depth"]
    del old.graph.output[:]
    old.graph.output.extend(keep)
    onnx.save(old, str(tmp_path / "old.onnx"))
    legacy = Predictor(tmp_path / "old.onnx", "onnxruntime").predict(image, uncertainty=True)
    assert legacy.uncertainty is None and np.allclose(legacy.depth, ort_out.depth)


def test_predictor_errors(exported, tmp_path):
    ckpt, path = exported
    pred = Predictor(path, "onnxruntime")
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        pred.predict(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        pred.predict(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(FileNotFoundError):
        Predictor(tmp_path / "none.onnx")
    bare = onnx.load(str(path))
    del bare.metadata_props[:]
    onnx.save(bare, str(tmp_path / "bare.onnx"))
    with pytest.raises(ValueError, match="no spidepth metadata"):
        Predictor(tmp_path / "bare.onnx", "onnxruntime")
    with pytest.raises(ValueError, match="unknown backend"):
        Predictor(ckpt, "magic")


def test_tensorrt_cache_keys_and_stale_engines(tmp_path):
    key = trt_mod.engine_key("abc", "10.3.0", "NVIDIA Orin", (8, 7), "fp16", (1, 3, 192, 640))
    same = trt_mod.engine_key("abc", "10.3.0", "NVIDIA Orin", (8, 7), "fp16", (1, 3, 192, 640))
    assert trt_mod.key_digest(key) == trt_mod.key_digest(same)
    for change in [dict(trt_version="11.0.0"), dict(precision="fp32"), dict(input_shape=(1, 3, 96, 320)),
                   dict(compute_capability=(9, 0)), dict(onnx_sha256="abd"), dict(gpu_name="H100")]:
        args = dict(onnx_sha256="abc", trt_version="10.3.0", gpu_name="NVIDIA Orin", compute_capability=(8, 7),
                    precision="fp16", input_shape=(1, 3, 192, 640))
        args.update(change)
        assert trt_mod.key_digest(trt_mod.engine_key(**args)) != trt_mod.key_digest(key)
    with pytest.raises(ValueError, match="precision"):
        trt_mod.engine_key("abc", "10", "g", (8, 7), "int8", (1, 3, 8, 8))
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"x")
    with pytest.raises(ValueError, match="no m.json"):
        trt_mod.read_sidecar(engine)
    engine.with_suffix(".json").write_text(json.dumps({"key": key, "metadata": {}}))
    assert trt_mod.check_engine_key(engine, same)["key"] == key
    newer = trt_mod.engine_key("abc", "11.0.0", "NVIDIA Orin", (8, 7), "fp16", (1, 3, 192, 640))
    with pytest.raises(ValueError, match="stale TensorRT engine.*tensorrt: built for 10.3.0, now 11.0.0"):
        trt_mod.check_engine_key(engine, newer)


def test_engine_cache_counts_a_hit_only_with_its_sidecar(tmp_path):
    key = trt_mod.engine_key("abc", "10.3.0", "NVIDIA Orin", (8, 7), "fp32", (1, 3, 64, 192))
    path = tmp_path / "m.0123.engine"
    builds = []

    def build(out):
        builds.append(out)
        out.write_bytes(b"engine %d" % len(builds))

    def crash(out):
        raise RuntimeError("killed mid-build")

    with pytest.raises(RuntimeError, match="killed"):
        trt_mod.cached_engine(path, key, {"input_size": [64, 192]}, crash)
    assert not path.exists()  # the sidecar alone is no hit
    assert trt_mod.cached_engine(path, key, {"input_size": [64, 192]}, build) == path
    assert trt_mod.read_sidecar(path)["key"] == key and builds == [path]
    trt_mod.cached_engine(path, key, {}, build)
    assert builds == [path]  # engine and sidecar: a hit, no rebuild
    path.with_suffix(".json").unlink()  # e.g. a crash between the two writes of an older build
    trt_mod.cached_engine(path, key, {}, build)
    assert len(builds) == 2 and path.read_bytes() == b"engine 2" and trt_mod.read_sidecar(path)["key"] == key


def test_tensorrt_backend_without_tensorrt_is_a_clear_error(exported):
    try:
        import tensorrt  # noqa: F401
        pytest.skip("tensorrt is installed here")
    except ImportError:
        pass
    with pytest.raises(RuntimeError, match=r"pip install \.\[tensorrt\]"):
        Predictor(exported[1], "tensorrt")


def test_the_cuda_runtime_names_what_is_missing(monkeypatch):
    """Engines run on cuda-python's device memory, not PyTorch's: without a GPU (here) or without the
    bindings, each step says what is missing."""
    from spidepth_core.inference import cuda_runtime, resolver
    assert [cuda_runtime.device_index(d) for d in (None, "cuda", "cuda:0", "cuda:3")] == [0, 0, 0, 3]
    with pytest.raises(ValueError, match="cuda or cuda:N"):
        cuda_runtime.device_index("gpu1")
    pytest.importorskip("cuda.bindings", reason="cuda-python is in the test extra")
    if cuda_runtime.gpu_count() == 0:
        with pytest.raises(RuntimeError, match="needs a CUDA GPU; GPU 0 is not visible"):
            cuda_runtime.gpu_identity()
        with pytest.raises(RuntimeError, match="CUDA cudaSetDevice failed: cudaError"):
            cuda_runtime.DeviceBuffers({"image": ((1, 3, 8, 8), np.float32)})
        assert not resolver.has_tensorrt_gpu()
    else:
        buffers = cuda_runtime.DeviceBuffers({"image": ((1, 3, 8, 8), np.float16)})
        data = np.arange(192, dtype=np.float16).reshape(1, 3, 8, 8)
        buffers.upload("image", data)
        assert np.array_equal(buffers.download("image"), data)
        buffers.close()
    monkeypatch.setitem(sys.modules, "cuda", None)
    monkeypatch.setitem(sys.modules, "cuda.bindings", None)
    with pytest.raises(RuntimeError, match=r"pip install cuda-python"):
        cuda_runtime.import_cudart()


def test_tensorrt_engine_matches_pytorch_on_gpu(exported, tmp_path, monkeypatch):
    pytest.importorskip("tensorrt", reason="TensorRT is not installed (no GPU on this machine)")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    monkeypatch.setenv("SPIDEPTH_CACHE", str(tmp_path))
    ckpt, path = exported
    image = np.random.default_rng(1).integers(0, 255, (64, 192, 3), dtype=np.uint8)
    ref = Predictor(ckpt, "torch").predict(image).depth
    engine = trt_mod.engine_for_onnx(path)
    assert trt_mod.engine_for_onnx(path) == engine  # cache hit, no rebuild
    out = Predictor(engine, "tensorrt").predict(image).depth
    assert np.allclose(out, ref, rtol=1e-3, atol=1e-2)

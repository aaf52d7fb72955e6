"""Which file runs on which runtime: every (model file x backend request) pair, on a CPU machine and as a
TensorRT + GPU machine would see it, gives one answer in resolve(), validate_model_file() and Predictor."""
import json
import shutil
import subprocess
import sys

import pytest

from spidepth_core.cli import build_parser
from spidepth_core.export import export_onnx
from spidepth_core.files import file_sha256
from spidepth_core.inference import Predictor, resolve, resolver, validate_model_file
from spidepth_core.inference.backends import Backend

try:
    import tensorrt  # noqa: F401
    HAVE_TRT = True
except ImportError:
    HAVE_TRT = False


@pytest.fixture(scope="module")
def files(tiny_checkpoint, tmp_path_factory):
    """paired.pt + the ONNX exported from it; lone.pt alone; foreign.pt with another model's .onnx and an
    .engine beside it; the ONNX and an engine (with sidecar) on their own; a file of an unknown kind."""
    root = tmp_path_factory.mktemp("resolve")
    paired = root / "paired.pt"
    shutil.copyfile(tiny_checkpoint, paired)
    export_onnx(paired, root / "paired.onnx")
    lone = root / "lone.pt"
    shutil.copyfile(tiny_checkpoint, lone)
    with open(lone, "ab") as f:
        f.write(b"\0")  # same weights, another file: the paired ONNX was not exported from it
    foreign = root / "foreign.pt"
    shutil.copyfile(lone, foreign)
    shutil.copyfile(root / "paired.onnx", root / "foreign.onnx")
    (root / "foreign.engine").write_bytes(b"not an engine")
    engine = root / "model.engine"
    engine.write_bytes(b"serialized engine")
    engine.with_suffix(".json").write_text(json.dumps({"key": {}, "metadata": {}}))
    (root / "model.bin").write_bytes(b"?")
    return {"paired": paired, "lone": lone, "foreign": foreign, "onnx": root / "paired.onnx", "engine": engine,
            "bin": root / "model.bin", "missing": root / "missing.pt"}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPIDEPTH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


CPU, GPU = False, True
# (file, request, TensorRT + GPU present) -> (backend, which ONNX it runs) or the error raised.
# ONNX: "beside" the checkpoint, "cache" (exported on first use), "self" (the file is one), None.
TABLE = {
    ("paired", "auto", CPU): ("onnxruntime", "beside"), ("paired", "auto", GPU): ("tensorrt", "beside"),
    ("paired", "torch", CPU): ("torch", None), ("paired", "onnxruntime", CPU): ("onnxruntime", "beside"),
    ("paired", "tensorrt", CPU): ("tensorrt", "beside"),
    ("lone", "auto", CPU): ("onnxruntime", "cache"), ("lone", "auto", GPU): ("tensorrt", "cache"),
    ("lone", "torch", CPU): ("torch", None), ("lone", "onnxruntime", CPU): ("onnxruntime", "cache"),
    ("lone", "tensorrt", CPU): ("tensorrt", "cache"),
    ("foreign", "auto", CPU): ("onnxruntime", "cache"), ("foreign", "auto", GPU): ("tensorrt", "cache"),
    ("foreign", "torch", CPU): ("torch", None), ("foreign", "onnxruntime", CPU): ("onnxruntime", "cache"),
    ("foreign", "tensorrt", CPU): ("tensorrt", "cache"),
    ("onnx", "auto", CPU): ("onnxruntime", "self"), ("onnx", "auto", GPU): ("tensorrt", "self"),
    ("onnx", "torch", CPU): ValueError, ("onnx", "onnxruntime", CPU): ("onnxruntime", "self"),
    ("onnx", "tensorrt", CPU): ("tensorrt", "self"),
    ("engine", "auto", CPU): ("tensorrt", None), ("engine", "auto", GPU): ("tensorrt", None),
    ("engine", "torch", CPU): ValueError, ("engine", "onnxruntime", CPU): ValueError,
    ("engine", "tensorrt", CPU): ("tensorrt", None),
    ("engine", "magic", CPU): ValueError, ("paired", "magic", CPU): ValueError,
    ("bin", "auto", CPU): ValueError, ("missing", "auto", CPU): FileNotFoundError,
}


def _which_onnx(plan, model):
    if plan.onnx is None:
        return None
    if plan.onnx == model:
        return "self"
    return "beside" if plan.onnx == model.with_suffix(".onnx") else "cache"


@pytest.mark.parametrize("case", sorted(TABLE, key=str), ids=lambda c: "-".join(map(str, c)))
def test_every_file_and_request_resolves_one_way(case, files, cache, monkeypatch):
    name, request, gpu = case
    monkeypatch.setattr(resolver, "has_tensorrt_gpu", lambda: gpu)
    model = files[name]
    expected = TABLE[case]
    if isinstance(expected, type):
        with pytest.raises(expected):
            resolve(model, request)
        with pytest.raises(expected):
            validate_model_file(model, request)
        with pytest.raises(expected):
            Predictor(model, request)
        return
    plan = resolve(model, request)
    assert (plan.backend, _which_onnx(plan, model)) == expected
    assert plan.export == (_which_onnx(plan, model) == "cache")
    assert validate_model_file(model, request) == plan
    if plan.backend == "tensorrt" and not HAVE_TRT:
        with pytest.raises(RuntimeError, match=r"pip install \.\[tensorrt\]"):
            Predictor(model, request)
        assert not cache.exists()  # it failed before a needless export
        return
    predictor = Predictor(model, request)
    assert predictor.backend.name == plan.backend and predictor.plan == plan
    if plan.export:
        assert plan.onnx is not None and plan.onnx.is_file() and plan.onnx.parent == cache / "onnx"
        assert not resolve(model, request).export  # exported once, found in the cache next time


def test_the_onnx_beside_a_checkpoint_is_trusted_only_by_its_recorded_sha256(files, cache):
    paired, foreign = files["paired"], files["foreign"]
    assert resolve(paired, "onnxruntime").onnx == paired.with_suffix(".onnx")
    assert file_sha256(paired) != file_sha256(foreign)
    plan = resolve(foreign, "tensorrt")  # TensorRT follows the same rule as onnxruntime
    assert plan.onnx != foreign.with_suffix(".onnx") and plan.export


def test_device_requests(files, monkeypatch):
    monkeypatch.setattr(resolver, "has_tensorrt_gpu", lambda: True)
    assert resolve(files["paired"], "auto", "cpu").backend == "onnxruntime"
    assert resolve(files["paired"], "auto", "cuda:0").backend == "tensorrt"
    with pytest.raises(ValueError, match="CUDA GPU, not device 'cpu'"):
        resolve(files["onnx"], "tensorrt", "cpu")


def test_without_onnxruntime_checkpoints_run_on_torch_and_onnx_files_fail_clearly(files, monkeypatch):
    monkeypatch.setattr(resolver, "has_onnxruntime", lambda: False)
    plan = resolve(files["paired"])
    assert plan.backend == "torch" and "onnxruntime is not installed" in plan.reason
    with pytest.raises(RuntimeError, match="needs onnxruntime"):
        resolve(files["onnx"])


def test_every_backend_meets_the_protocol(files):
    for request in ("torch", "onnxruntime"):
        backend: Backend = Predictor(files["paired"], request).backend
        assert backend.name == request and {"input_size", "depth_range"} <= set(backend.metadata)


def test_the_command_line_offers_the_resolver_backends_without_loading_torch():
    predict = build_parser()._subparsers._group_actions[0].choices["predict"]
    assert next(a.choices for a in predict._actions if a.dest == "backend") == resolver.BACKENDS
    code = "import sys, spidepth_core.cli; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"

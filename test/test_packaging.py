"""The ROS install path: every runtime import is covered by package.xml (rosdep) or the README's pip line."""
import ast
import re
import sys
import xml.etree.ElementTree as ET

from conftest import ROOT

# rosdep key -> the module it provides
ROSDEP_MODULES = {
    "python3-numpy": "numpy", "python3-opencv": "cv2", "python3-yaml": "yaml", "python3-scipy": "scipy",
    "python3-tqdm": "tqdm", "python3-pytest": "pytest", "python3-pil": "PIL",
}
# pip name -> module
PIP_MODULES = {"torch": "torch", "torchvision": "torchvision", "timm": "timm", "onnx": "onnx",
               "onnxruntime": "onnxruntime", "rosbags": "rosbags", "tensorboard": "tensorboard"}
OPTIONAL = {"tensorrt", "cuda"}  # the NVIDIA extra (TensorRT, cuda-python), imported only where asked for


def _imports() -> set[str]:
    files = [*ROOT.glob("spidepth_core/**/*.py"), *ROOT.glob("spidepth_ros/**/*.py"),
             ROOT / "launch" / "depth.launch.py"]
    found = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
            if isinstance(node, ast.ImportFrom) and node.module == "torch.utils.tensorboard":
                found.add("tensorboard")  # a torch module that needs the tensorboard package
    return found - set(sys.stdlib_module_names) - {"spidepth_core", "spidepth_ros"}


def _package_xml_modules() -> set[str]:
    root = ET.parse(ROOT / "package.xml").getroot()
    keys = {e.text.strip() for e in root if e.tag in ("exec_depend", "depend") and e.text}
    return {ROSDEP_MODULES.get(k, k) for k in keys}


def _readme_pip_modules() -> set[str]:
    install = (ROOT / "README.md").read_text().split("## Install")[1].split("\n## ")[0]
    lines = [ln for ln in install.splitlines() if ln.strip().startswith("pip install ") and "." not in ln.split("#")[0]]
    names = {n for ln in lines for n in re.findall(r"[A-Za-z0-9_-]+", ln.split("#")[0].split("pip install", 1)[1])}
    return {PIP_MODULES[n] for n in names}


def test_every_runtime_import_is_installed_by_rosdep_or_the_pip_line():
    missing = _imports() - _package_xml_modules() - _readme_pip_modules() - OPTIONAL
    assert not missing, f"imported but neither in package.xml nor in the README's pip lines: {sorted(missing)}"


def _setup_modules(section: str) -> set[str]:
    setup = (ROOT / "setup.py").read_text()
    text = setup.split(section)[1].split("]")[0]
    names = set(re.findall(r'"([A-Za-z0-9_-]+)[<>=]', text))
    other = {"opencv-python-headless": "cv2", "pyyaml": "yaml", "pillow": "PIL"}
    return {PIP_MODULES.get(n, other.get(n, n)) for n in names}


def test_setup_py_requires_what_the_code_imports():
    ros = {"rclpy", "rcl_interfaces", "sensor_msgs", "std_msgs", "diagnostic_msgs", "ament_index_python",
           "launch", "launch_ros"}  # from ROS 2 (or PyPI's ros-* wheels, scripts/setup.sh)
    runtime, train = _setup_modules("install_requires"), _setup_modules('"train":')
    assert not _imports() - runtime - train - ros - OPTIONAL
    assert not runtime & {"torch", "timm", "torchvision", "onnx", "cv2"}  # the runtime install stays small

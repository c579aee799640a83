"""One DriverConfig named like the node parameters: the nodes and the replay read the same YAML alike, crops and
timing included, so a replay with a robot's parameter file preprocesses and times frames as that robot does."""

from __future__ import annotations

import dataclasses

import pytest

pytest.importorskip("rclpy")

from lnn_control import evaluate as E  # noqa: E402
from lnn_control.command import CAR, DRONE  # noqa: E402
from lnn_control.driver import Driver, DriverConfig, FieldLimits, limit_specs, load_driver_config  # noqa: E402
from lnn_control.nn import checkpoint  # noqa: E402
from lnn_control.nn.policy import Policy, PolicyConfig  # noqa: E402
from lnn_control.nodes.driver_params import (  # noqa: E402
    NODE_PARAMETERS,
    CameraParams,
    CommandParams,
    ModelParams,
    build_driver,
    command_params,
)
from lnn_control.ros.node_util import declare_config  # noqa: E402
from lnn_control.timing import TimingConfig  # noqa: E402
from lnn_control.vision import PreprocessConfig  # noqa: E402

ROBOT_YAML = """\
/**/drive_node:
  ros__parameters:
    limits:
      velocity: {max: 0.8}
      steering: {max_rate: 3.0}
    crop_top: 6
    crop_bottom: 2
    nominal_dt: 0.04
    reset_gap: 0.7
    stamped: true
"""


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("model")
    config = PolicyConfig(core="cfc", features=8, preprocess=PreprocessConfig(56, 56, crop_top=1),
                          timing=TimingConfig(nominal_dt=0.05, reset_gap=1.0))
    checkpoint.save(Policy(config), root / "m")
    return root / "m"


def test_the_driver_config_fields_are_the_node_parameters():
    names = {f.name for f in dataclasses.fields(DriverConfig)} - {"limits"}  # limits.*: per field of the action
    declared = {f.name for group in NODE_PARAMETERS["drive_node"] for f in dataclasses.fields(group)}
    assert names <= declared  # drive_node declares every field, by the same name: no table between them
    split = {f.name for node in ("perception_node", "policy_node") for g in NODE_PARAMETERS[node]
             for f in dataclasses.fields(g)}
    assert names <= split
    assert {f.name for f in dataclasses.fields(CameraParams)} & names == {"crop_top", "crop_bottom", "crop_left",
                                                                          "crop_right"}
    assert CommandParams().driver_config() == DriverConfig()  # the defaults: the model's own timing and crop
    names = [spec["name"] for spec in limit_specs(CAR)]
    assert names == [f"limits.{f}.{k}" for f in ("steering", "velocity") for k in ("min", "max", "max_rate")]
    assert [spec["name"] for spec in limit_specs(DRONE)][-1] == "limits.yaw_rate.max_rate"


def test_the_same_yaml_gives_the_node_and_the_replay_the_same_driver(rclpy_context, model, tmp_path):
    from rclpy.node import Node

    path = tmp_path / "robot.yaml"
    path.write_text(ROBOT_YAML)
    node = Node("drive_node", context=rclpy_context, cli_args=["--ros-args", "--params-file", str(path)])
    warnings: list[str] = []
    try:
        camera = declare_config(node, CameraParams)
        driver = build_driver(node, ModelParams(model=str(model)), camera)
        command_params(node, driver, lambda params: None)
    finally:
        node.destroy_node()
    replay = E.make_drivers(E.load_models([model]), load_driver_config(path), warnings.append)[0]
    assert driver.config == replay.config == load_driver_config(path)
    assert driver.preprocess == replay.preprocess == PreprocessConfig(56, 56, crop_top=6, crop_bottom=2)
    assert driver.timing == replay.timing == TimingConfig(nominal_dt=0.04, reset_gap=0.7)
    assert replay.config.limits == {"velocity.max": 0.8, "steering.max_rate": 3.0}
    assert driver.limits == replay.limits == (FieldLimits(-1.0, 1.0, 3.0), FieldLimits(0.0, 0.8, 0.0))
    (message,) = warnings
    for item in ("crop_top 6 (the model's 1)", "crop_bottom 2 (the model's 0)", "nominal_dt 0.04 (the model's 0.05)",
                 "reset_gap 0.7 (the model's 1)"):
        assert item in message, message


def test_the_package_drive_yaml_leaves_timing_and_crop_to_the_model(model):
    from lnn_control.paths import config_file

    config = load_driver_config(config_file("drive.yaml"))
    assert dataclasses.replace(config, limits={}) == DriverConfig()
    replay = E.make_drivers(E.load_models([model]), config)[0]
    policy = checkpoint.load(model)
    assert replay.timing == policy.config.timing and replay.preprocess == policy.config.preprocess
    assert replay.limits == Driver(policy).limits, "drive.yaml's limits are the car schema's own"

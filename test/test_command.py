"""Action schemas: the car's and the drone's commands, their Twist slots, the checkpoint, the labels."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest

from lnn_control.command import CAR, DRONE, SCHEMAS, ActionField, ActionSchema, Command, car, schema_from
from lnn_control.data.labels import CommandConfig, CommandError, command_from_msg
from lnn_control.nn import checkpoint
from lnn_control.nn.policy import Policy, PolicyConfig


def twist(lx=0.0, ly=0.0, lz=0.0, az=0.0) -> SimpleNamespace:
    """A Twist-shaped value (rosbags and rclpy messages are read by their fields)."""
    return SimpleNamespace(linear=SimpleNamespace(x=lx, y=ly, z=lz), angular=SimpleNamespace(x=0.0, y=0.0, z=az))


def test_the_two_schemas_and_their_units():
    assert CAR.names == ("steering", "velocity") and DRONE.names == ("vx", "vy", "vz", "yaw_rate")
    assert [f.twist for f in DRONE.fields] == ["linear.x", "linear.y", "linear.z", "angular.z"]
    assert CAR.field("steering").twist == "angular.z" and CAR.field("velocity").unit == "m/s"
    assert DRONE.field("yaw_rate").unit == "rad/s" and DRONE.frame == "base_link"
    assert SCHEMAS == {"car": CAR, "drone": DRONE}


def test_a_command_reads_its_fields_by_name_and_refuses_the_wrong_size():
    command = DRONE.of(7, vx=1.0, yaw_rate=-0.5)
    assert command.values == (1.0, 0.0, 0.0, -0.5) and command.stamp_ns == 7
    assert command.vx == 1.0 and command.get("yaw_rate") == -0.5 and command.schema is DRONE
    assert command.replace(vz=0.3).vz == 0.3 and command.restamped(9).stamp_ns == 9
    assert command.describe() == "vx +1.000 m/s, vy +0.000 m/s, vz +0.000 m/s, yaw_rate -0.500 rad/s"
    with pytest.raises(AttributeError, match="drone command has no field 'steering'"):
        _ = command.steering
    with pytest.raises(KeyError, match="no field"):
        DRONE.of(steering=1.0)
    with pytest.raises(ValueError, match="car command needs 2 values"):
        Command((1.0, 2.0, 3.0))
    assert car(0.1, 2.0, 5) == Command((0.1, 2.0), 5) == CAR.of(5, steering=0.1, velocity=2.0)
    assert car(0.1, 2.0) != DRONE.command((0.1, 2.0, 0.0, 0.0)), "another schema is another command"
    assert not car(math.nan, 1.0).is_finite() and DRONE.stop().values == (0.0,) * 4


def test_twist_slots_round_trip():
    command = DRONE.of(3, vx=1.0, vy=-0.5, vz=0.25, yaw_rate=0.1)
    slots = DRONE.twist_values(command)
    assert slots == {"linear.x": 1.0, "linear.y": -0.5, "linear.z": 0.25, "angular.z": 0.1}
    msg = twist(lx=1.0, ly=-0.5, lz=0.25, az=0.1)
    assert DRONE.from_twist(msg, 3) == command
    assert CAR.from_twist(msg) == car(0.1, 1.0), "the car reads angular.z as steering, linear.x as velocity"


def test_a_schema_travels_as_json_and_bad_ones_are_refused():
    assert ActionSchema.from_dict(json.loads(json.dumps(DRONE.to_dict()))) == DRONE
    assert schema_from("drone") is DRONE and schema_from(None) is CAR and schema_from(DRONE) is DRONE
    with pytest.raises(ValueError, match="unknown action 'boat'"):
        schema_from("boat")
    with pytest.raises(ValueError, match="low <= high"):
        ActionField("x", "m/s", 2.0, 1.0)
    with pytest.raises(ValueError, match="are a command's own"):
        ActionSchema("bad", (ActionField("values", "1", 0, 1), ActionField("replace", "1", 0, 1, twist="linear.y")))
    with pytest.raises(ValueError, match="same Twist field"):
        ActionSchema("bad", (ActionField("a", "1", 0, 1, twist="linear.x"), ActionField("b", "1", 0, 1)))
    with pytest.raises(ValueError, match="unknown key"):
        ActionSchema.from_dict({"name": "x", "fields": [{"name": "a", "unit": "1", "low": 0, "high": 1, "hue": 2}]})


def test_the_checkpoint_carries_the_schema_and_old_checkpoints_are_the_cars(tmp_path):
    boat = ActionSchema("boat", (ActionField("thrust", "N", 0.0, 10.0, bounds=(0.0, 20.0)),
                                 ActionField("rudder", "rad", -0.5, 0.5, bounds=(-1.0, 1.0), twist="angular.z")))
    for action in (DRONE, boat):
        policy = Policy(PolicyConfig(action=action, features=8))
        checkpoint.save(policy, tmp_path / action.name)
        loaded = checkpoint.load(tmp_path / action.name)
        assert loaded.config.action == action and loaded.config.outputs == action.names
        assert loaded.config.target_mean == (0.0,) * len(action)
    document = json.loads((tmp_path / "drone.json").read_text())
    config = dict(document["config"])
    config.pop("action")
    config["outputs"] = ["steering", "velocity"]  # how a checkpoint stored before the schema names its outputs
    config["target_mean"], config["target_std"] = [0.0, 0.0], [1.0, 1.0]
    assert PolicyConfig.from_dict(config).action == CAR
    config["outputs"] = ["steering"]
    with pytest.raises(ValueError, match="do not match the action's fields"):
        PolicyConfig.from_dict(config)


def test_labels_read_the_runs_action_from_twist_and_car_only_types_say_so():
    drone = CommandConfig(action="drone")
    msg = twist(lx=0.5, ly=0.2, lz=-0.1, az=0.3)
    label = command_from_msg(msg, "geometry_msgs/msg/Twist", drone, stamp_ns=4)
    assert label == DRONE.of(4, vx=0.5, vy=0.2, vz=-0.1, yaw_rate=0.3)
    stamped = SimpleNamespace(twist=msg)
    assert command_from_msg(stamped, "geometry_msgs/TwistStamped", drone) == label.restamped(0)
    assert command_from_msg(msg, "geometry_msgs/msg/Twist") == car(0.3, 0.5), "the car by default"
    joy = SimpleNamespace(axes=[0.1, 0.2], buttons=[])
    with pytest.raises(CommandError, match="car's steering and velocity; the drone action"):
        command_from_msg(joy, "sensor_msgs/msg/Joy", drone)
    with pytest.raises(CommandError, match="non-finite"):
        command_from_msg(twist(lx=math.inf), "geometry_msgs/msg/Twist", drone)
    with pytest.raises(ValueError, match="unknown action"):
        CommandConfig(action="boat")


def test_a_run_names_its_action_once_for_the_model_and_the_labels():
    from lnn_control.train import RunConfig

    run = RunConfig.from_dict({"action": "drone"})
    assert run.policy_config().action == DRONE and run.dataset.pairing.commands.schema == DRONE
    assert RunConfig.from_dict(run.to_dict()).action == DRONE
    with pytest.raises(ValueError, match="model.outputs is gone"):
        RunConfig.from_dict({"model": {"outputs": ["steering", "velocity"]}})
    with pytest.raises(ValueError, match="set the top-level action only"):
        RunConfig.from_dict({"action": "car", "dataset": {"pairing": {"commands": {"action": "drone"}}}})

"""lnn_control.ros.msgs (Twist <-> Command, numpy <-> Image, types by name) and lnn_control.ros.node_util
(parameters from a config dataclass: types, ranges, choices, empty lists)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

pytest.importorskip("rclpy")

from geometry_msgs.msg import Twist, TwistStamped  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image, Joy  # noqa: E402

from lnn_control.command import car  # noqa: E402
from lnn_control.ros.msgs import (  # noqa: E402
    command_to_twist,
    compressed_image_msg,
    encode_jpeg,
    image_array,
    image_msg,
    message_class,
    normalize_type_name,
    twist_msg,
    twist_to_command,
    twist_type,
    type_name_of,
)
from lnn_control.ros.node_util import Throttle, declare_config, describe, param, read_param  # noqa: E402
from lnn_control.vision import decode_msg  # noqa: E402


def test_twist_round_trip_both_layouts():
    assert twist_type(False) is Twist and twist_type(True) is TwistStamped
    plain = twist_msg(0.25, 1.5, stamped=False)
    assert isinstance(plain, Twist) and plain.linear.x == 1.5 and plain.angular.z == 0.25
    assert twist_to_command(plain) == car(0.25, 1.5, 0)
    stamped = command_to_twist(car(-0.5, 0.7, 1_234_000_000_123), stamped=True, frame_id="base_link")
    assert isinstance(stamped, TwistStamped) and stamped.header.frame_id == "base_link"
    assert (stamped.header.stamp.sec, stamped.header.stamp.nanosec) == (1234, 123)
    back = deserialize_message(serialize_message(stamped), TwistStamped)
    assert twist_to_command(back) == car(-0.5, 0.7, 1_234_000_000_123)


@pytest.mark.parametrize(
    ("array", "encoding"),
    [
        (np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3), "rgb8"),
        (np.arange(4 * 5 * 4, dtype=np.uint8).reshape(4, 5, 4), "rgba8"),
        (np.arange(20, dtype=np.uint8).reshape(4, 5), "mono8"),
        (np.arange(20, dtype=np.uint16).reshape(4, 5) * 1000, "mono16"),
        (np.linspace(-1, 1, 32, dtype=np.float32).reshape(1, 32), "32FC1"),
    ],
)
def test_image_round_trip(array, encoding):
    msg = image_msg(array, stamp_ns=5_000_000_007, frame_id="cam")
    assert msg.encoding == encoding and msg.is_bigendian == 0
    assert msg.step == array.shape[1] * (array.shape[2] if array.ndim == 3 else 1) * array.dtype.itemsize
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == (5, 7, "cam")
    back = image_array(deserialize_message(serialize_message(msg), Image))
    assert back.dtype == array.dtype and np.array_equal(back, array)


def test_image_array_handles_row_padding_and_names_bad_fields():
    msg = image_msg(np.zeros((2, 3, 3), np.uint8), encoding="bgr8")
    padded = Image(height=2, width=3, encoding="rgb8", step=12, data=bytes(range(24)))
    view = image_array(padded)
    assert view.shape == (2, 3, 3) and view[1, 0, 0] == 12
    with pytest.raises(ValueError, match="data has 18 bytes, expected step\\*height = 20"):
        image_array(Image(height=2, width=3, encoding="rgb8", step=10, data=msg.data))
    with pytest.raises(ValueError, match="step 8 is smaller"):
        image_array(Image(height=2, width=3, encoding="rgb8", step=8, data=bytes(16)))
    with pytest.raises(ValueError, match="'yuv422'"):
        image_array(Image(encoding="yuv422"))
    with pytest.raises(ValueError, match="needs an HxWx3 array"):
        image_msg(np.zeros((2, 3), np.uint8), encoding="rgb8")


def test_compressed_image_decodes_with_the_shared_decoder():
    rgb = np.zeros((24, 32, 3), np.uint8)
    rgb[:, :16] = (255, 0, 0)
    msg = compressed_image_msg(encode_jpeg(rgb, 95), stamp_ns=1)
    assert isinstance(msg, CompressedImage) and msg.format == "jpeg"
    decoded = decode_msg(msg)
    assert decoded.shape == (24, 32, 3) and decoded[12, 4, 0] > 200 and decoded[12, 28, 0] < 60


def test_types_by_name():
    for name in ("sensor_msgs/msg/Joy", "sensor_msgs/Joy", "sensor_msgs.msg.Joy"):
        assert normalize_type_name(name) == "sensor_msgs/msg/Joy"
        assert message_class(name) is Joy
    assert type_name_of(Joy) == type_name_of(Joy()) == "sensor_msgs/msg/Joy"
    with pytest.raises(ValueError, match="cannot import the Python package no_such_pkg.msg"):
        message_class("no_such_pkg/msg/Thing")
    with pytest.raises(ValueError, match="sensor_msgs.msg has no type Nothing"):
        message_class("sensor_msgs/msg/Nothing")
    with pytest.raises(ValueError, match="not a message type name"):
        normalize_type_name("Image")


# -- parameters -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoConfig:
    rate: float = param(20.0, "Hz", min=0.5, max=100.0)
    count: int = param(3, "how many", min=0, max=10)
    mode: str = param("a", "which", choices=("a", "b"))
    names: list[str] = param(["x"], "names")
    rates: list[float] = param([], "per name", min=0.0)
    note: str = param("", "free text", dynamic=True)


def make_node(rclpy_context, name, **overrides):
    from rclpy.node import Node

    return Node(name, context=rclpy_context, parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])


def test_declare_config_defaults_descriptions_and_coercion(rclpy_context):
    node = make_node(rclpy_context, "demo_defaults", rate=30, count=4, rates=[1.0, 2.5])
    try:
        config = declare_config(node, DemoConfig)
        assert config == DemoConfig(rate=30.0, count=4, rates=[1.0, 2.5])
        assert isinstance(config.rate, float) and all(isinstance(r, float) for r in config.rates)
        descriptor = node.describe_parameter("rate")
        assert descriptor.description == "Hz" and descriptor.read_only
        assert descriptor.floating_point_range[0].to_value == 100.0
        assert "one of: a, b" in node.describe_parameter("mode").additional_constraints
        assert not node.describe_parameter("note").read_only
        node.set_parameters([Parameter("note", value="wet track")])
        assert read_param(node, DemoConfig, "note") == "wet track"
        assert [s["name"] for s in describe(DemoConfig)] == ["rate", "count", "mode", "names", "rates", "note"]
    finally:
        node.destroy_node()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"rate": 0.1}, "parameter 'rate': .*out of range"),
        ({"rate": 1000}, "parameter 'rate' = 1000.0 is above its maximum 100.0"),
        ({"count": "three"}, "parameter 'count'"),
        ({"mode": "c"}, "parameter 'mode' = 'c' is not one of 'a', 'b'"),
        ({"rates": [1.0, -2.0]}, "parameter 'rates' = -2.0 is below its minimum 0.0"),
    ],
)
def test_declare_config_names_bad_values(rclpy_context, overrides, message):
    node = make_node(rclpy_context, "demo_bad", **overrides)
    try:
        with pytest.raises(ValueError, match=message):
            declare_config(node, DemoConfig)
    finally:
        node.destroy_node()


def test_throttle_per_key():
    now = [0.0]
    throttle = Throttle(2.0, clock=lambda: now[0])
    assert throttle("a") and throttle("b") and not throttle("a")
    now[0] = 2.5
    assert throttle("a") and throttle.take_suppressed("a") == 1 and throttle.take_suppressed("a") == 0

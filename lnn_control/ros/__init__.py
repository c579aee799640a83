"""What only the ROS nodes need: QoS profiles, stamp conversion, message <-> numpy, DDS environment."""

from lnn_control.ros import built_msgs as _built_msgs

_built_msgs.activate()  # interface packages lnn-control build-msgs made (ackermann_msgs, tf2_msgs), if any

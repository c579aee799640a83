"""A person drives the simulator: sim_node -> camera; teleop_keyboard_node -> command mux -> sim_node; recorder beside.

The same nodes, parameter files and remaps as ``lnn-control up teleop-sim`` (lnn_control/bringup.py)::

    ros2 launch lnn_control teleop_sim.launch.py seed:=3
    ros2 launch lnn_control teleop_sim.launch.py terminal:='gnome-terminal --wait --'

sim_node runs free (50 Hz x 20 ms steps: real time) and publishes ``/clock``; every node runs with
``use_sim_time: true``. teleop_keyboard_node reads single keys from a TTY, which ``ros2 launch`` does not give its
nodes: it opens in a terminal window of its own (``terminal``, ``xterm -e`` by default). Without a display, use
``lnn-control up teleop-sim`` from a terminal instead. Watch the car on ``camera/image_raw`` (e.g. rqt_image_view).
Parameters: config/record.yaml, config/teleop.yaml, config/sim.yaml, then config/teleop_sim.yaml (later wins).
"""

from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

PACKAGE = "lnn_control"


def generate_launch_description() -> LaunchDescription:
    config = PathJoinSubstitution([FindPackageShare(PACKAGE), "config"])
    files = [
        PathJoinSubstitution([config, "record.yaml"]),
        PathJoinSubstitution([config, "teleop.yaml"]),
        PathJoinSubstitution([config, "sim.yaml"]),
        PathJoinSubstitution([config, "teleop_sim.yaml"]),
    ]
    sim_time = {"use_sim_time": True}
    return LaunchDescription(
        [
            DeclareLaunchArgument("seed", default_value="0", description="seed of the first episode"),
            DeclareLaunchArgument(
                "terminal", default_value="xterm -e", description="terminal the keyboard teleop runs in (a prefix)"
            ),
            Node(
                package=PACKAGE,
                executable="sim_node",
                name="sim_node",
                output="screen",
                parameters=[*files, sim_time, {"seed": ParameterValue(LaunchConfiguration("seed"), value_type=int)}],
            ),
            Node(
                package=PACKAGE,
                executable="teleop_keyboard_node",
                name="teleop_keyboard_node",
                output="screen",
                prefix=LaunchConfiguration("terminal"),
                parameters=[*files, sim_time],
            ),
            Node(
                package=PACKAGE,
                executable="command_mux_node",
                name="command_mux_node",
                output="screen",
                parameters=[*files, sim_time],
            ),
            Node(
                package=PACKAGE,
                executable="recorder_node",
                name="recorder_node",
                output="screen",
                parameters=[*files, sim_time],
            ),
        ]
    )

"""Demonstrations without a person: sim_node -> demonstrator_node -> command mux -> sim_node, recorder beside.

The same nodes, parameter files and remaps as ``lnn-control up record-sim`` (lnn_control/bringup.py)::

    ros2 launch lnn_control record_sim.launch.py seed:=0

sim_node publishes ``/clock``; every node runs with ``use_sim_time: true``. The demonstrator publishes on
``teleop/cmd_vel`` exactly as a keyboard teleop would (the mux lets the human topic win, the recorder records it as
the human command); its clean label goes out on ``demonstrator_node/label``. A person may take over with
teleop_keyboard_node on the same topic. Parameters: config/drive.yaml, config/record.yaml, then config/sim.yaml
(later wins, so the sim's recorder topics apply).
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
        PathJoinSubstitution([config, "drive.yaml"]),
        PathJoinSubstitution([config, "record.yaml"]),
        PathJoinSubstitution([config, "sim.yaml"]),
    ]
    sim_time = {"use_sim_time": True}
    return LaunchDescription(
        [
            DeclareLaunchArgument("seed", default_value="0", description="seed of the first episode"),
            Node(
                package=PACKAGE,
                executable="sim_node",
                name="sim_node",
                output="screen",
                parameters=[*files, sim_time, {"seed": ParameterValue(LaunchConfiguration("seed"), value_type=int)}],
            ),
            Node(
                package=PACKAGE,
                executable="demonstrator_node",
                name="demonstrator_node",
                output="screen",
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

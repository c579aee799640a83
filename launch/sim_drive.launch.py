"""The simulator drives itself through the network: sim_node -> drive_node -> command mux -> sim_node, on sim time.

The same nodes, parameter files and remaps as ``lnn-control up sim-drive`` (lnn_control/bringup.py)::

    ros2 launch lnn_control sim_drive.launch.py model:=/path/to/stem seed:=0

sim_node publishes ``/clock``; every node runs with ``use_sim_time: true``. drive_node publishes on ``lnn/cmd_vel``
(the mux's policy input); the mux's ``cmd_vel`` goes to sim_node, and a teleop on ``teleop/cmd_vel`` takes over.
Parameters: config/drive.yaml, then config/sim.yaml (later wins).
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
    files = [PathJoinSubstitution([config, "drive.yaml"]), PathJoinSubstitution([config, "sim.yaml"])]
    sim_time = {"use_sim_time": True}
    return LaunchDescription(
        [
            DeclareLaunchArgument("model", default_value="", description="checkpoint stem; empty: the shipped model"),
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
                executable="drive_node",
                name="drive_node",
                output="screen",
                parameters=[*files, sim_time, {"model": LaunchConfiguration("model")}],
                remappings=[("cmd_vel", "lnn/cmd_vel")],
            ),
            Node(
                package=PACKAGE,
                executable="command_mux_node",
                name="command_mux_node",
                output="screen",
                parameters=[*files, sim_time],
            ),
        ]
    )

"""DAgger with interventions: the policy drives the simulator, the demonstrator labels every frame and takes over.

The same nodes, parameter files and remaps as ``lnn-control up dagger-sim`` (lnn_control/bringup.py)::

    ros2 launch lnn_control dagger_sim.launch.py model:=/path/to/stem seed:=100

sim_node publishes ``/clock``; every node runs with ``use_sim_time: true``. drive_node publishes on ``lnn/cmd_vel``
(the mux's policy input); demonstrator_node publishes its clean label for every frame on
``demonstrator_node/label`` and, only while the car is off the road or far off the centreline, on
``teleop/cmd_vel``, which the mux lets win as a person's command. The recorder records both, who drove
(``mux/active_source``) and the policy's own command. Parameters: config/drive.yaml, config/record.yaml,
config/sim.yaml, then config/dagger.yaml (later wins: intervention on, the mux's teleop timeout, the recorded topics).
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
        PathJoinSubstitution([config, "dagger.yaml"]),
    ]
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

"""Drive a robot with the network: camera -> drive_node (or perception_node + policy_node) -> command mux -> cmd_vel.

The same nodes, parameter files and remaps as ``lnn-control up drive`` and ``lnn-control up drive-split``
(lnn_control/bringup.py)::

    ros2 launch lnn_control drive.launch.py model:=/path/to/stem
    ros2 launch lnn_control drive.launch.py split:=true image_topic:=/camera/color/image_raw cmd_vel_topic:=/cmd_vel

Parameters come from ``params_file`` (default: the package's config/drive.yaml) and, for the mux,
``mux_params_file`` (config/mux.yaml); the ``model``, ``image_transport`` and ``stamped`` arguments, when given,
override them (``stamped`` sets the driving node and the mux together: their message types must agree).
With ``use_mux:=true`` (default) the driving node publishes on ``lnn/cmd_vel``, the mux's policy input, and a person
on ``teleop/cmd_vel`` always wins; the mux's output goes to ``cmd_vel_topic``. With ``use_mux:=false`` the driving
node publishes on ``cmd_vel_topic`` itself.
For 640x480 frames between processes, export the Fast DDS profile first (see config/fastdds.xml).
"""

from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

PACKAGE = "lnn_control"
ARGUMENTS = {
    "params_file": ("", "parameter YAML of the driving nodes; empty: the package's config/drive.yaml"),
    "mux_params_file": ("", "parameter YAML of command_mux_node; empty: the package's config/mux.yaml"),
    "split": ("false", "true: perception_node + policy_node; false: drive_node (the two fused, for small computers)"),
    "use_mux": ("true", "run command_mux_node between the network and cmd_vel_topic (a person can take over)"),
    "model": ("", "checkpoint stem; empty: what params_file says (by default the model shipped in models/)"),
    "image_transport": ("", "raw or compressed; empty: what params_file says"),
    "stamped": ("", "true: TwistStamped commands; empty: what params_file says"),
    "image_topic": ("camera/image_raw", "the camera's sensor_msgs/Image topic"),
    "compressed_topic": ("camera/image_raw/compressed", "the camera's sensor_msgs/CompressedImage topic"),
    "cmd_vel_topic": ("cmd_vel", "where the vehicle listens for commands"),
    "namespace": ("", "namespace of every node"),
    "use_sim_time": ("false", "take time from /clock (a simulator or a bag played with --clock)"),
}


def _nodes(context, *_args, **_kwargs) -> list:
    arg = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    truthy = {"true", "1", "yes"}
    config = PathJoinSubstitution([FindPackageShare(PACKAGE), "config"])
    params_file = arg["params_file"] or PathJoinSubstitution([config, "drive.yaml"])
    mux_params_file = arg["mux_params_file"] or PathJoinSubstitution([config, "mux.yaml"])
    overrides = {"use_sim_time": arg["use_sim_time"].lower() in truthy}
    if arg["model"]:
        overrides["model"] = arg["model"]
    if arg["image_transport"]:
        overrides["image_transport"] = arg["image_transport"]
    if arg["stamped"]:
        overrides["stamped"] = arg["stamped"].lower() in truthy
    use_mux = arg["use_mux"].lower() in truthy
    camera = [("camera/image_raw", arg["image_topic"]), ("camera/image_raw/compressed", arg["compressed_topic"])]
    command = [("cmd_vel", "lnn/cmd_vel" if use_mux else arg["cmd_vel_topic"])]
    common = {
        "package": PACKAGE,
        "output": "screen",
        "namespace": arg["namespace"],
        "parameters": [params_file, overrides],
    }
    if arg["split"].lower() in truthy:
        nodes = [
            Node(executable="perception_node", name="perception_node", remappings=camera, **common),
            Node(executable="policy_node", name="policy_node", remappings=command, **common),
        ]
    else:
        nodes = [Node(executable="drive_node", name="drive_node", remappings=camera + command, **common)]
    if use_mux:
        mux_overrides = {k: v for k, v in overrides.items() if k in ("use_sim_time", "stamped")}
        common["parameters"] = [mux_params_file, mux_overrides]
        nodes.append(
            Node(
                executable="command_mux_node",
                name="command_mux_node",
                remappings=[("cmd_vel", arg["cmd_vel_topic"])],
                **common,
            )
        )
    return nodes


def generate_launch_description() -> LaunchDescription:
    arguments = [DeclareLaunchArgument(name, default_value=d, description=t) for name, (d, t) in ARGUMENTS.items()]
    return LaunchDescription([*arguments, OpaqueFunction(function=_nodes)])

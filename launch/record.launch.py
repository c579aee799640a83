"""Record demonstrations: a person drives through the command mux while recorder_node writes one bag per episode.

The same nodes and parameter files as ``lnn-control up record`` (lnn_control/bringup.py)::

    ros2 launch lnn_control record.launch.py operator:=alice output_dir:=~/bags
    ros2 launch lnn_control record.launch.py joy:=true image_topic:=/camera/color/image_raw cmd_vel_topic:=/cmd_vel
    ros2 service call /recorder_node/start std_srvs/srv/Trigger     # ... drive ...
    ros2 service call /recorder_node/stop std_srvs/srv/Trigger

Nodes: ``recorder_node`` (config/record.yaml), ``command_mux_node`` (config/mux.yaml; its output goes to
``cmd_vel_topic``) and, with ``joy:=true``, ``joy_teleop_node`` (config/teleop.yaml; start a ``joy_node`` for your
gamepad beside it). The keyboard teleop needs a terminal of its own: ``ros2 run lnn_control teleop_keyboard_node``.
Launch arguments left empty keep what the YAML files say.
"""

from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

PACKAGE = "lnn_control"
ARGUMENTS = {
    "record_params": ("", "parameter YAML for recorder_node; empty: the package's config/record.yaml"),
    "mux_params": ("", "parameter YAML for command_mux_node; empty: the package's config/mux.yaml"),
    "teleop_params": ("", "parameter YAML for joy_teleop_node; empty: the package's config/teleop.yaml"),
    "joy": ("false", "true: also run joy_teleop_node (sensor_msgs/Joy on joy -> teleop/cmd_vel)"),
    "image_topic": ("camera/image_raw", "the camera topic the recorder records as camera/image_raw"),
    "cmd_vel_topic": ("cmd_vel", "where the vehicle listens for commands (the mux's output)"),
    "output_dir": ("", "folder for the bags; empty: what record_params says"),
    "storage": ("", "mcap or sqlite3; empty: what record_params says"),
    "operator": ("", "who drives, stored in each bag"),
    "vehicle": ("", "which vehicle, stored in each bag"),
    "autostart": ("", "true: record one episode from start to shutdown; empty: what record_params says"),
    "record_only_when_human": ("", "true: keep messages only while the mux says teleop; empty: the YAML's value"),
    "stamped": ("", "true: TwistStamped commands on every topic; empty: what the YAML files say"),
    "namespace": ("", "namespace of every node"),
    "use_sim_time": ("false", "take time from /clock (a simulator or a bag played with --clock)"),
}


def _nodes(context, *_args, **_kwargs) -> list:
    arg = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    truthy = {"true", "1", "yes"}

    def config(name: str, default: str):
        return arg[name] or PathJoinSubstitution([FindPackageShare(PACKAGE), "config", default])

    common = {"use_sim_time": arg["use_sim_time"].lower() in truthy}
    if arg["stamped"]:
        common["stamped"] = arg["stamped"].lower() in truthy
    recorder = {"use_sim_time": common["use_sim_time"]}
    for key in ("output_dir", "storage", "operator", "vehicle"):
        if arg[key]:
            recorder[key] = arg[key]
    for key in ("autostart", "record_only_when_human"):
        if arg[key]:
            recorder[key] = arg[key].lower() in truthy
    nodes = [
        Node(
            package=PACKAGE,
            executable="recorder_node",
            name="recorder_node",
            namespace=arg["namespace"],
            output="screen",
            parameters=[config("record_params", "record.yaml"), recorder],
            remappings=[("camera/image_raw", arg["image_topic"])],
        ),
        Node(
            package=PACKAGE,
            executable="command_mux_node",
            name="command_mux_node",
            namespace=arg["namespace"],
            output="screen",
            parameters=[config("mux_params", "mux.yaml"), common],
            remappings=[("cmd_vel", arg["cmd_vel_topic"])],
        ),
    ]
    if arg["joy"].lower() in truthy:
        nodes.append(
            Node(
                package=PACKAGE,
                executable="joy_teleop_node",
                name="joy_teleop_node",
                namespace=arg["namespace"],
                output="screen",
                parameters=[config("teleop_params", "teleop.yaml"), common],
            )
        )
    return nodes


def generate_launch_description() -> LaunchDescription:
    arguments = [DeclareLaunchArgument(name, default_value=d, description=t) for name, (d, t) in ARGUMENTS.items()]
    return LaunchDescription([*arguments, OpaqueFunction(function=_nodes)])

"""Record demonstrations: a person drives through the command mux while recorder_node writes one bag per episode.

Starts the node set ``record`` of config/node_sets.yaml, as ``lnn-control up record`` does
(lnn_control/launching.py)::

    ros2 launch lnn_control record.launch.py operator:=alice output_dir:=~/bags
    ros2 launch lnn_control record.launch.py joy:=true image_topic:=/camera/color/image_raw cmd_vel_topic:=/cmd_vel
    ros2 service call /recorder_node/start std_srvs/srv/Trigger     # ... drive ...
    ros2 service call /recorder_node/stop std_srvs/srv/Trigger

Nodes: ``recorder_node`` (config/record.yaml), ``command_mux_node`` (config/mux.yaml; its output goes to
``cmd_vel_topic``) and, with ``joy:=true``, ``joy_teleop_node`` (config/teleop.yaml) with ``joy/joy_node`` beside it
for the gamepad (config/node_sets.yaml's ``external``; the ``joy`` package, ``apt install ros-$ROS_DISTRO-joy``);
every node reads the three files, as ``up`` reads them. The keyboard teleop needs a terminal of
its own: ``ros2 run lnn_control teleop_keyboard_node`` (with ``--ros-args -p stamped:=true`` beside
``stamped:=true``). Launch arguments left empty keep what the YAML files say.

``stamped`` goes to every node that has the parameter (the mux, the teleops); the recorder has none: its
config/record.yaml leaves the command topic's TYPE out, so it subscribes with whatever type the teleop publishes
(Twist or TwistStamped) and says so in its log, and warns if a configured type does not match the graph.
"""

from lnn_control.bringup import MUX, WILDCARD
from lnn_control.launching import SetChoice, launch_description, truthy

RECORDER = "recorder_node"
ARGUMENTS = {
    "record_params": ("", "parameter YAML for recorder_node; empty: the package's config/record.yaml"),
    "mux_params": ("", "parameter YAML for command_mux_node; empty: the package's config/mux.yaml"),
    "teleop_params": ("", "parameter YAML for joy_teleop_node; empty: the package's config/teleop.yaml"),
    "joy": ("false", "true: also run joy/joy_node (the gamepad -> joy) and joy_teleop_node (joy -> teleop/cmd_vel)"),
    "image_topic": ("camera/image_raw", "the camera topic the recorder records as camera/image_raw"),
    "cmd_vel_topic": ("cmd_vel", "where the vehicle listens for commands (the mux's output)"),
    "output_dir": ("", "folder for the bags; empty: what record_params says"),
    "storage": ("", "mcap or sqlite3; empty: what record_params says"),
    "operator": ("", "who drives, stored in each bag"),
    "vehicle": ("", "which vehicle, stored in each bag"),
    "autostart": ("", "true: record one episode from start to shutdown; empty: what record_params says"),
    "record_only_when_human": ("", "true: keep messages only while the mux says teleop; empty: the YAML's value"),
    "stamped": (
        "",
        "true: TwistStamped commands on every command topic (mux, teleop); empty: what the YAML files say. The "
        "recorder takes the command topic's type from the graph, so either records",
    ),
    "namespace": ("", "namespace of every node"),
    "use_sim_time": ("false", "take time from /clock (a simulator or a bag played with --clock)"),
}


def choose(arg: dict[str, str]) -> SetChoice:
    everyone: dict = {}
    if truthy(arg["use_sim_time"]):
        everyone["use_sim_time"] = True
    if arg["stamped"]:  # the recorder ignores it: it records the command topic with the type the graph offers
        everyone["stamped"] = truthy(arg["stamped"])
    recorder = {key: arg[key] for key in ("output_dir", "storage", "operator", "vehicle") if arg[key]}
    recorder.update({key: truthy(arg[key]) for key in ("autostart", "record_only_when_human") if arg[key]})
    configs = {"record.yaml": arg["record_params"], "mux.yaml": arg["mux_params"], "teleop.yaml": arg["teleop_params"]}
    return SetChoice(
        "record",
        with_nodes=("joy_teleop_node",) if truthy(arg["joy"]) else (),
        configs={name: path for name, path in configs.items() if path},
        params={WILDCARD: everyone, RECORDER: recorder},
        remaps={RECORDER: [("camera/image_raw", arg["image_topic"])], MUX: [("cmd_vel", arg["cmd_vel_topic"])]},
        namespace=arg["namespace"],
    )


def generate_launch_description():
    return launch_description(ARGUMENTS, choose)

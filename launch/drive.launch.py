"""Drive a robot with the network: camera -> drive_node (or perception_node + policy_node) -> command mux -> cmd_vel.

Starts the node set ``drive`` (or ``drive-split`` with ``split:=true``) of config/node_sets.yaml, as
``lnn-control up drive`` and ``lnn-control up drive-split`` do (lnn_control/launching.py)::

    ros2 launch lnn_control drive.launch.py model:=/path/to/stem
    ros2 launch lnn_control drive.launch.py split:=true image_topic:=/camera/color/image_raw cmd_vel_topic:=/cmd_vel

Parameters come from ``params_file`` (default: the package's config/drive.yaml) and ``mux_params_file``
(config/mux.yaml), read by every node as ``up`` reads them; the ``model``, ``image_transport`` and ``stamped``
arguments, when given, override them (``stamped`` sets every node: the driving node's and the mux's message types
must agree). With ``use_mux:=true`` (default) the driving node publishes on ``lnn/cmd_vel``, the mux's policy
input, and a person on ``teleop/cmd_vel`` always wins; the mux's output goes to ``cmd_vel_topic``. With
``use_mux:=false`` the driving node publishes on ``cmd_vel_topic`` itself.
For 640x480 frames between processes, export the Fast DDS profile first (see config/fastdds.xml).
"""

from lnn_control.bringup import MUX, WILDCARD
from lnn_control.launching import SetChoice, launch_description, truthy

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


def choose(arg: dict[str, str]) -> SetChoice:
    split, use_mux = truthy(arg["split"]), truthy(arg["use_mux"])
    everyone: dict = {}
    if truthy(arg["use_sim_time"]):
        everyone["use_sim_time"] = True
    for name in ("model", "image_transport"):
        if arg[name]:
            everyone[name] = arg[name]
    if arg["stamped"]:
        everyone["stamped"] = truthy(arg["stamped"])
    configs = {"drive.yaml": arg["params_file"], "mux.yaml": arg["mux_params_file"]}
    camera = [("camera/image_raw", arg["image_topic"]), ("camera/image_raw/compressed", arg["compressed_topic"])]
    # the node that talks to the vehicle: the mux, else the driving node (with the mux it publishes on lnn/cmd_vel)
    vehicle = MUX if use_mux else ("policy_node" if split else "drive_node")
    return SetChoice(
        "drive-split" if split else "drive",
        without=() if use_mux else (MUX,),
        configs={name: path for name, path in configs.items() if path},
        params={WILDCARD: everyone},
        remaps={WILDCARD: camera, vehicle: [("cmd_vel", arg["cmd_vel_topic"])]},
        namespace=arg["namespace"],
    )


def generate_launch_description():
    return launch_description(ARGUMENTS, choose)

"""Drive a robot with the network: camera -> drive_node (or perception_node + policy_node) -> command mux -> cmd_vel.

Starts the node set ``drive`` (or ``drive-split`` with ``split:=true``) of config/node_sets.yaml, as
``lnn-control up drive`` and ``lnn-control up drive-split`` do (lnn_control/launching.py)::

    ros2 launch lnn_control drive.launch.py model:=/path/to/stem
    ros2 launch lnn_control drive.launch.py split:=true model:=/path/to/stem image_topic:=/camera/color/image_raw

Parameters come from ``params_file`` (default: the package's config/drive.yaml) and ``mux_params_file``
(config/mux.yaml), read by every node as ``up`` reads them; the ``model``, ``image_transport`` and ``stamped``
arguments, when given, override them (``stamped`` sets every node: the driving node's and the mux's message types
must agree; TwistStamped by default). With ``use_mux:=true`` (default) the driving node publishes on
``lnn/cmd_vel``, the mux's policy input, and a person on ``teleop/cmd_vel`` always wins; the mux's output goes to
``cmd_vel_topic``. With ``use_mux:=false`` the driving node publishes on ``cmd_vel_topic`` itself.

Safe start on a real vehicle: ``model`` must be given (the models shipped in models/ are for the simulator sets; an
empty ``model`` is refused with the way to give one), and nothing drives until autonomy is armed. With the mux:
``ros2 service call /command_mux_node/autonomy std_srvs/srv/SetBool "{data: true}"``, or hold the gamepad's
autonomy button (joy_teleop_node publishes ``autonomy/enable``); the e-stop (``e_stop`` topic, ``~/e_stop``
service) disarms it. With ``use_mux:=false`` the driving node starts disabled (zero velocity) until
``ros2 service call /drive_node/enable std_srvs/srv/SetBool "{data: true}"`` (``/policy_node/enable`` when split).
With ``camera:=true`` camera_node (config/camera.yaml) publishes the camera; with ``vehicle:=ackermann`` (or
``twist_yaw_rate``, ``normalised``) vehicle_adapter_node turns the mux's normalised car command into what the
vehicle reads (config/vehicle_adapter.yaml; ackermann: AckermannDriveStamped on ``drive``, the twist modes on
``cmd_vel_topic``); with ``joy:=true`` joy/joy_node and joy_teleop_node let a person drive and hold the autonomy
deadman. For 640x480 frames between processes, export the Fast DDS profile first (see config/fastdds.xml).
"""

from lnn_control.bringup import MUX, WILDCARD
from lnn_control.launching import SetChoice, launch_description, truthy

CAMERA, ADAPTER, JOY = "camera_node", "vehicle_adapter_node", "joy_teleop_node"

ARGUMENTS = {
    "params_file": ("", "parameter YAML of the driving nodes; empty: the package's config/drive.yaml"),
    "mux_params_file": ("", "parameter YAML of command_mux_node; empty: the package's config/mux.yaml"),
    "split": ("false", "true: perception_node + policy_node; false: drive_node (the two fused, for small computers)"),
    "use_mux": ("true", "run command_mux_node between the network and cmd_vel_topic (a person can take over)"),
    "model": ("", "checkpoint stem (required: a real vehicle does not take the shipped models); empty: what "
                  "params_file says, refused when it says nothing"),
    "image_transport": ("", "raw or compressed; empty: what params_file says"),
    "stamped": ("", "true: TwistStamped commands; empty: what params_file says"),
    "image_topic": ("camera/image_raw", "the camera's sensor_msgs/Image topic"),
    "compressed_topic": ("camera/image_raw/compressed", "the camera's sensor_msgs/CompressedImage topic"),
    "cmd_vel_topic": ("cmd_vel", "where the vehicle listens for commands"),
    "camera": ("false", "true: also run camera_node (a webcam, GStreamer pipeline or video file -> image_topic)"),
    "camera_device": ("", "camera_node's device (/dev/video0, a pipeline, a file); empty: what camera_params says"),
    "camera_params": ("", "parameter YAML of camera_node; empty: the package's config/camera.yaml"),
    "vehicle": ("", "ackermann, twist_yaw_rate or normalised: run vehicle_adapter_node after the mux (ackermann "
                    "-> drive, the twist modes -> cmd_vel_topic); empty: the mux's output goes to cmd_vel_topic"),
    "vehicle_params": ("", "parameter YAML of vehicle_adapter_node; empty: the package's config/vehicle_adapter.yaml"),
    "joy": ("false", "true: also run joy/joy_node and joy_teleop_node (a person drives; RB arms autonomy)"),
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
    configs = {
        "drive.yaml": arg["params_file"],
        "mux.yaml": arg["mux_params_file"],
        "camera.yaml": arg["camera_params"],
        "vehicle_adapter.yaml": arg["vehicle_params"],
    }
    params: dict = {WILDCARD: everyone}
    camera = [("camera/image_raw", arg["image_topic"]), ("camera/image_raw/compressed", arg["compressed_topic"])]
    # the node that talks to the vehicle: the adapter, else the mux, else the driving node (with the mux it
    # publishes on lnn/cmd_vel)
    vehicle = MUX if use_mux else ("policy_node" if split else "drive_node")
    output = [("cmd_vel", arg["cmd_vel_topic"])]
    if arg["vehicle"]:
        params[ADAPTER] = {"mode": arg["vehicle"]}
        vehicle, output = ADAPTER, [("vehicle/cmd_vel", arg["cmd_vel_topic"])]
    if arg["camera_device"]:
        params[CAMERA] = {"device": arg["camera_device"]}
    wanted = {CAMERA: truthy(arg["camera"]), ADAPTER: bool(arg["vehicle"]), JOY: truthy(arg["joy"])}
    return SetChoice(
        "drive-split" if split else "drive",
        with_nodes=[node for node, on in wanted.items() if on],
        without=() if use_mux else (MUX,),
        configs={name: path for name, path in configs.items() if path},
        params=params,
        remaps={WILDCARD: camera, vehicle: output},
        namespace=arg["namespace"],
    )


def generate_launch_description():
    return launch_description(ARGUMENTS, choose)

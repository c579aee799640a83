"""A person flies the drone simulator: sim_node -> camera; teleop (keys, or a gamepad) -> command mux -> sim_node.

Starts the node set ``drone-teleop-sim`` of config/node_sets.yaml, as ``lnn-control up drone-teleop-sim`` does::

    ros2 launch lnn_control drone_teleop_sim.launch.py seed:=3
    ros2 launch lnn_control drone_teleop_sim.launch.py joy:=true

sim_node (backend drone) runs free at real time and publishes ``/clock``. teleop_keyboard_node (``action: drone``:
w/s forward, a/d left and right, arrows up/down climb, q/e yaw) opens in a terminal window of its own (``terminal``);
``joy:=true`` adds joy_teleop_node (mode 2). Parameters: config/record.yaml, config/teleop_drone.yaml,
config/drone_sim.yaml, then config/teleop_drone_sim.yaml (later wins), then these arguments.
"""

from lnn_control.launching import SetChoice, launch_description, truthy

ARGUMENTS = {
    "seed": ("0", "seed of the first episode"),
    "terminal": ("xterm -e", "terminal the keyboard teleop runs in (a prefix)"),
    "joy": ("false", "also start joy_teleop_node (a gamepad, mode 2; needs a joy_node)"),
}


def choose(arg: dict[str, str]) -> SetChoice:
    return SetChoice(
        "drone-teleop-sim",
        with_nodes=["joy_teleop_node"] if truthy(arg["joy"]) else [],
        params={"sim_node": {"seed": int(arg["seed"])}},
        prefixes={"teleop_keyboard_node": arg["terminal"]},
    )


def generate_launch_description():
    return launch_description(ARGUMENTS, choose)

"""The simulator drives itself through the network: sim_node -> drive_node -> command mux -> sim_node, on sim time.

Starts the node set ``sim-drive`` of config/node_sets.yaml, as ``lnn-control up sim-drive`` does
(lnn_control/launching.py)::

    ros2 launch lnn_control sim_drive.launch.py model:=/path/to/stem seed:=0

sim_node publishes ``/clock``; every node runs with ``use_sim_time: true``. drive_node publishes on ``lnn/cmd_vel``
(the mux's policy input); the mux's ``cmd_vel`` goes to sim_node, and a teleop on ``teleop/cmd_vel`` takes over.
Parameters: the set's config files (config/drive.yaml, then config/sim.yaml; later wins), then these arguments.
"""

from lnn_control.launching import SetChoice, launch_description

ARGUMENTS = {
    "model": ("", "checkpoint stem; empty: what config/drive.yaml says (the shipped model)"),
    "seed": ("0", "seed of the first episode"),
}


def choose(arg: dict[str, str]) -> SetChoice:
    params = {"sim_node": {"seed": int(arg["seed"])}}
    if arg["model"]:
        params["drive_node"] = {"model": arg["model"]}
    return SetChoice("sim-drive", params=params)


def generate_launch_description():
    return launch_description(ARGUMENTS, choose)

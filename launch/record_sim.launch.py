"""Demonstrations without a person: sim_node -> demonstrator_node -> command mux -> sim_node, recorder beside.

Starts the node set ``record-sim`` of config/node_sets.yaml, as ``lnn-control up record-sim`` does
(lnn_control/launching.py)::

    ros2 launch lnn_control record_sim.launch.py seed:=0

sim_node publishes ``/clock``; every node runs with ``use_sim_time: true``. The demonstrator publishes on
``teleop/cmd_vel`` exactly as a keyboard teleop would (the mux lets the human topic win, the recorder records it as
the human command); its clean label goes out on ``demonstrator_node/label``. A person may take over with
teleop_keyboard_node on the same topic. Parameters: the set's config files (config/drive.yaml, config/record.yaml,
then config/sim.yaml; later wins, so the sim's recorder topics apply), then these arguments.
"""

from lnn_control.launching import SetChoice, launch_description

ARGUMENTS = {"seed": ("0", "seed of the first episode")}


def choose(arg: dict[str, str]) -> SetChoice:
    return SetChoice("record-sim", params={"sim_node": {"seed": int(arg["seed"])}})


def generate_launch_description():
    return launch_description(ARGUMENTS, choose)

"""A person drives the simulator: sim_node -> camera; teleop_keyboard_node -> command mux -> sim_node; recorder beside.

Starts the node set ``teleop-sim`` of config/node_sets.yaml, as ``lnn-control up teleop-sim`` does
(lnn_control/launching.py)::

    ros2 launch lnn_control teleop_sim.launch.py seed:=3
    ros2 launch lnn_control teleop_sim.launch.py terminal:='gnome-terminal --wait --'

sim_node runs free (50 Hz x 20 ms steps: real time) and publishes ``/clock``; every node runs with
``use_sim_time: true``. teleop_keyboard_node reads single keys from a TTY, which ``ros2 launch`` does not give its
nodes: it opens in a terminal window of its own (``terminal``, ``xterm -e`` by default). Without a display, use
``lnn-control up teleop-sim`` from a terminal instead. Watch the car on ``camera/image_raw`` (e.g. rqt_image_view).
Parameters: the set's config files (config/record.yaml, config/teleop.yaml, config/sim.yaml, then
config/teleop_sim.yaml; later wins), then these arguments.
"""

from lnn_control.launching import SetChoice, launch_description

ARGUMENTS = {
    "seed": ("0", "seed of the first episode"),
    "terminal": ("xterm -e", "terminal the keyboard teleop runs in (a prefix)"),
}


def choose(arg: dict[str, str]) -> SetChoice:
    return SetChoice(
        "teleop-sim",
        params={"sim_node": {"seed": int(arg["seed"])}},
        prefixes={"teleop_keyboard_node": arg["terminal"]},
    )


def generate_launch_description():
    return launch_description(ARGUMENTS, choose)

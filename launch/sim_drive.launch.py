"""The simulator drives itself through the network: sim_node -> drive_node -> command mux -> sim_node, on sim time.

Starts the node set ``sim-drive`` of config/node_sets.yaml, as ``lnn-control up sim-drive`` does
(lnn_control/launching.py)::

    ros2 launch lnn_control sim_drive.launch.py model:=/path/to/stem seed:=0

sim_node publishes ``/clock``; every node runs with ``use_sim_time: true``. drive_node publishes on ``lnn/cmd_vel``
(the mux's policy input); the mux's ``cmd_vel`` goes to sim_node, and a teleop on ``teleop/cmd_vel`` takes over.
Parameters: the set's config files (config/drive.yaml, then config/sim.yaml; later wins), then these arguments.
"""

from lnn_control.launching import SIM_POLICY_ARGUMENTS, launch_description, sim_policy_choice

ARGUMENTS = SIM_POLICY_ARGUMENTS
choose = sim_policy_choice("sim-drive")


def generate_launch_description():
    return launch_description(ARGUMENTS, choose)

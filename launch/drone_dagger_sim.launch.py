"""DAgger for the drone: drive_node flies the drone simulator, the demonstrator labels and takes over, recorder beside.

Starts the node set ``drone-dagger-sim`` of config/node_sets.yaml, as ``lnn-control up drone-dagger-sim`` does::

    ros2 launch lnn_control drone_dagger_sim.launch.py model:=/path/to/drone_stem seed:=100

Parameters: config/drive.yaml, config/record.yaml, config/drone_sim.yaml, then config/drone_dagger.yaml (later
wins), then these arguments.
"""

from lnn_control.launching import SIM_POLICY_ARGUMENTS, launch_description, sim_policy_choice

ARGUMENTS = SIM_POLICY_ARGUMENTS
choose = sim_policy_choice("drone-dagger-sim")


def generate_launch_description():
    return launch_description(ARGUMENTS, choose)

"""The drone simulator flies itself through the network: sim_node -> drive_node -> command mux -> sim_node, on sim time.

Starts the node set ``drone-sim-drive`` of config/node_sets.yaml, as ``lnn-control up drone-sim-drive`` does
(lnn_control/launching.py)::

    ros2 launch lnn_control drone_sim_drive.launch.py model:=/path/to/drone_stem seed:=0

sim_node (backend drone) publishes ``/clock``, the camera, ``odom`` and TF; drive_node (a model whose action is
the drone's) publishes TwistStamped body-frame velocities and yaw rate on ``lnn/cmd_vel``; the mux's ``cmd_vel``
goes to the simulated autopilot, and a teleop on ``teleop/cmd_vel`` takes over. Parameters: config/drive.yaml, then
config/drone_sim.yaml (later wins), then these arguments.
"""

from lnn_control.launching import SIM_POLICY_ARGUMENTS, launch_description, sim_policy_choice

ARGUMENTS = SIM_POLICY_ARGUMENTS
choose = sim_policy_choice("drone-sim-drive")


def generate_launch_description():
    return launch_description(ARGUMENTS, choose)

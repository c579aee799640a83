"""DAgger with interventions: the policy drives the simulator, the demonstrator labels every frame and takes over.

Starts the node set ``dagger-sim`` of config/node_sets.yaml, as ``lnn-control up dagger-sim`` does
(lnn_control/launching.py)::

    ros2 launch lnn_control dagger_sim.launch.py model:=/path/to/stem seed:=100

sim_node publishes ``/clock``; every node runs with ``use_sim_time: true``. drive_node publishes on ``lnn/cmd_vel``
(the mux's policy input); demonstrator_node publishes its clean label for every frame on
``demonstrator_node/label`` and, only while the car is off the road or far off the centreline, on
``teleop/cmd_vel``, which the mux lets win as a person's command. The recorder records both, who drove
(``mux/active_source``) and the policy's own command. Parameters: the set's config files (config/drive.yaml,
config/record.yaml, config/sim.yaml, then config/dagger.yaml; later wins: intervention on, the mux's teleop timeout,
the recorded topics), then these arguments.
"""

from lnn_control.launching import SIM_POLICY_ARGUMENTS, launch_description, sim_policy_choice

ARGUMENTS = SIM_POLICY_ARGUMENTS
choose = sim_policy_choice("dagger-sim")


def generate_launch_description():
    return launch_description(ARGUMENTS, choose)

"""The drone demonstrator flies the drone simulator while the recorder writes episodes, on sim time.

Starts the node set ``drone-record-sim`` of config/node_sets.yaml, as ``lnn-control up drone-record-sim`` does::

    ros2 launch lnn_control drone_record_sim.launch.py seed:=0

sim_node (backend drone) -> drone_demonstrator_node (privileged state: sim/truth, sim/episode) -> teleop/cmd_vel ->
command mux -> sim_node; recorder_node writes the camera, the executed and the clean commands, the truth and the
odometry (config/drone_sim.yaml). Parameters: config/drive.yaml, config/record.yaml, config/drone_sim.yaml.
"""

from lnn_control.launching import SetChoice, launch_description

ARGUMENTS = {"seed": ("0", "seed of the first episode")}


def choose(arg: dict[str, str]) -> SetChoice:
    return SetChoice("drone-record-sim", params={"sim_node": {"seed": int(arg["seed"])}})


def generate_launch_description():
    return launch_description(ARGUMENTS, choose)

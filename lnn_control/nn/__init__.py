"""The neural network core: wirings, LTC and CfC cells, baselines, conv head, policy, checkpoints, export.

No ROS imports here: everything runs on a laptop.
"""

from lnn_control.nn.policy import Policy, PolicyConfig

__all__ = ["Policy", "PolicyConfig"]

"""drive_node: perception and policy fused in one node, for small computers.

The camera half of :mod:`lnn_control.nodes.perception` and the command half of :mod:`lnn_control.nodes.policy`
around one :class:`~lnn_control.driver.Driver`: the features go from one to the other as a numpy array, never
serialised. Same parameters (declared from :mod:`lnn_control.nodes.driver_params`), same topics, services and
watchdog as the two nodes together, and the same commands on the same frames; only ``lnn/features`` is not
published. The watchdog here watches the camera topic.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
from rclpy.node import Node
from std_msgs.msg import Header

from lnn_control.nodes.driver_params import CameraParams, ModelParams, build_driver, log_summary
from lnn_control.nodes.perception import CameraInput
from lnn_control.nodes.policy import CommandOutput
from lnn_control.ros.node_util import declare_config, run_node


class DriveNode(Node):
    """Camera -> commands on ``cmd_vel`` in one callback."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("drive_node", **kwargs)
        model = declare_config(self, ModelParams)
        camera = declare_config(self, CameraParams)
        self.driver = build_driver(self, model, camera)
        self.camera = CameraInput(self, camera, self.driver, self._on_features)
        self.output = CommandOutput(self, self.driver, self.camera.topic)
        self.get_logger().info(f"{self.camera.topic} -> {self.output.publisher.topic_name}")

    def _on_features(self, features: np.ndarray, header: Header) -> None:
        self.output.step(features, header)

    def destroy_node(self) -> None:
        log_summary(self, f"{self.camera.summary()}; {self.output.summary()}")
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(DriveNode, args)


if __name__ == "__main__":
    sys.exit(main())

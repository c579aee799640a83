"""drive_node: perception and policy fused in one node, for small computers.

The camera half of :mod:`lnn_control.nodes.perception` and the command half of :mod:`lnn_control.nodes.policy`
around one :class:`~lnn_control.driver.Driver`: the features go from one to the other as a numpy array, never
serialised. Same parameters (declared from :mod:`lnn_control.nodes.driver_params`), same topics, services and
watchdog as the two nodes together, and the same commands on the same frames; only ``lnn/features`` is not
published. The watchdog here watches the camera topic.

``/diagnostics`` (every ``diagnostics_period`` s, :mod:`lnn_control.ros.diagnostics`; hardware id: the model), as
policy_node's (:mod:`lnn_control.nodes.policy`) with the camera for the features:

- ``drive_node: camera``: frames per second of the node clock over 5 s, received and dropped (by kind:
  ``oversize``, ``unsupported``, ``corrupt``, ``decode``, ...; the latest reason); WARN before the first frame or
  when some frames of the last 5 s were dropped, ERROR when none came for 5 s or all were dropped;
- ``drive_node: watchdog``: the camera's node-clock age against ``timeout``; WARN while no frame came yet (or the
  node is disabled), ERROR when frames stopped for longer than ``timeout`` while enabled (zero velocity goes out);
- ``drive_node: output``: enabled or disabled, commands published, the age of the latest, non-finite outputs;
  ERROR when the latest network output was not finite;
- ``drive_node: model``: the model, its core and action, the inference backend and threads; WARN when the backend
  is not the one asked for.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
from rclpy.node import Node
from std_msgs.msg import Header

from lnn_control.nodes.driver_diagnostics import model_report
from lnn_control.nodes.driver_params import CameraParams, ModelParams, build_driver, log_summary
from lnn_control.nodes.perception import CameraInput
from lnn_control.nodes.policy import CommandOutput
from lnn_control.ros.diagnostics import Diagnostics
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
        self.diagnostics = Diagnostics(self, hardware_id=model.model or "shipped")
        self.diagnostics.add("camera", self.camera.report)
        self.output.add_diagnostics(self.diagnostics)
        self.diagnostics.add("model", lambda: model_report(model.model, model.inference, self.driver, model.threads))
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

"""policy_node: CNN features -> the model's command, integrating the liquid network over camera time.

Subscribes ``lnn/features`` (sensor_msgs/Image 32FC1, 1 x N, the camera's header; see
:mod:`lnn_control.nodes.perception`) and runs :meth:`Driver.command_from_features`, the second half of the one
frame-to-command path: dt is the time between consecutive **header stamps** (clamped to ``[min_dt, max_dt]``; the
state resets on a gap above ``reset_gap`` or when time goes backwards, e.g. a bag looping), then the limits of each
field of the model's action apply (``limits.<field>.min``, ``.max``, ``.max_rate``; the car: ``limits.velocity.max``,
``limits.steering.max_rate``, ...).

Publishes on ``cmd_vel`` (remapped to ``lnn/cmd_vel`` when the command mux runs) a geometry_msgs/TwistStamped whose
header stamp is the camera stamp (with ``stamped:=false`` a Twist), each field of the action in the Twist field
its schema names (:mod:`lnn_control.command`). The car: ``linear.x`` = velocity in m/s, ``angular.z`` = steering,
normalised to [-1, 1] with **positive turning left** (REP 103), a steering command rather than a yaw rate; the drone:
``linear`` = body FLU velocity, ``angular.z`` = yaw rate. Everything else in the Twist is zero. The publisher is
reliable and transient local, keep last 50 (``KEPT`` in :mod:`lnn_control.ros.qos`): a recorder that subscribes it
``latched`` and matches a moment late still gets the first commands; volatile subscribers (the mux, twist_mux,
controllers) get only new ones.

Safety, all on the node clock (so ``use_sim_time`` applies to stamps and timers alike):

- watchdog: a timer at ``watchdog_rate`` checks that input arrived within ``timeout`` (default 0.2 s); if not, it
  publishes zero velocity and keeps publishing it at the timer rate until input returns;
- a NaN or infinite network output gives zero velocity, an error log and a state reset (the Driver resets);
- ``~/enable`` (std_srvs/SetBool): disabled, the node keeps integrating frames but publishes zero velocity. It
  starts disabled unless ``enabled:=true``: alone on a vehicle it never drives before someone enables it
  (``lnn-control up`` and the launch files enable it behind the command mux, whose autonomy arming gates it);
- ``~/reset`` (std_srvs/Trigger): forget the recurrent state; the next frame starts afresh.

The neuron activity after every step goes out on ``~/state`` (std_msgs/Float32MultiArray) for inspection.

``/diagnostics`` (every ``diagnostics_period`` s, :mod:`lnn_control.ros.diagnostics`; hardware id: the model):

- ``policy_node: features``: features per second of the node clock over 5 s, received and dropped (by kind:
  ``encoding``, ``size``; the latest reason); WARN before the first or when some of the last 5 s were dropped, ERROR
  when none came for 5 s or all were dropped;
- ``policy_node: watchdog``: the input's node-clock age against ``timeout``; WARN while no input came yet (or the
  node is disabled), ERROR when input stopped for longer than ``timeout`` while enabled (zero velocity goes out);
- ``policy_node: output``: enabled or disabled (OK either way, the message says which), commands published, the
  age of the latest, non-finite outputs so far; ERROR when the latest network output was not finite;
- ``policy_node: model``: the model, its core and action, the inference backend and threads; WARN when the backend
  is not the one asked for (``inference``).

drive_node (:mod:`lnn_control.nodes.drive`) has the same statuses, with ``camera`` in place of ``features``.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import Float32MultiArray, Header, MultiArrayDimension
from std_srvs.srv import SetBool, Trigger

from lnn_control.command import Command
from lnn_control.driver import Driver, Watchdog
from lnn_control.health import Level, Report, age_report
from lnn_control.nodes.driver_diagnostics import InputHealth, model_report
from lnn_control.nodes.driver_params import (
    CommandParams,
    ModelParams,
    build_driver,
    command_params,
    log_summary,
    problem_key,
)
from lnn_control.nodes.perception import FEATURES_TOPIC, features_from_msg
from lnn_control.ros.diagnostics import Diagnostics
from lnn_control.ros.msgs import command_to_twist, twist_type
from lnn_control.ros.node_util import Throttle, declare_config, run_node
from lnn_control.ros.qos import COMMAND, KEPT, SENSOR
from lnn_control.ros.stamps import stamp_to_ns

CMD_TOPIC = "cmd_vel"


class CommandOutput:
    """The command half shared by policy_node and drive_node: step, limits, watchdog, services, state topic.

    ``input_topic`` names what the watchdog waits for, in its log messages. :meth:`watchdog_report` and
    :meth:`output_report` are the nodes' ``watchdog`` and ``output`` diagnostics.
    """

    def __init__(self, node: Node, driver: Driver, input_topic: str) -> None:
        self.node = node
        self.driver = driver
        self.input_topic = input_topic
        self.params: CommandParams = command_params(node, driver, self._apply)
        self.enabled = self.params.enabled
        self.watchdog = Watchdog(self.params.timeout)
        self.stopped = False  # the watchdog is holding zero velocity
        self.publisher = node.create_publisher(twist_type(self.params.stamped), CMD_TOPIC, KEPT)
        self.state_publisher = node.create_publisher(Float32MultiArray, "~/state", COMMAND)
        self.timer = node.create_timer(1.0 / self.params.watchdog_rate, self._check_watchdog)
        self.reset_service = node.create_service(Trigger, "~/reset", self._on_reset)
        self.enable_service = node.create_service(SetBool, "~/enable", self._on_enable)
        self.faults = 0
        self.commands = 0  # published for frames (not the watchdog's zeros)
        self._throttle = Throttle()
        if not self.enabled:
            node.get_logger().warning(
                f"disabled: publishing zero velocity until {node.resolve_service_name('~/enable')} is called with true"
            )

    # -- per frame --------------------------------------------------------------------------------------------------

    def step(self, features: np.ndarray, header: Header) -> None:
        """Features of the frame with this camera header -> command published (zero when disabled or faulted)."""
        self.watchdog.feed(self.node.get_clock().now().nanoseconds)
        if self.stopped:
            self.stopped = False
            self._log("info", f"{self.input_topic}: input is back, driving")
        command = self.driver.command_from_features(features, stamp_to_ns(header.stamp))
        info = self.driver.last
        if info.fault:
            self.faults += 1
            self._log("error", f"{info.event} (raw output {info.raw}, {self.faults} faults so far)")
        elif info.event:
            self._log("warning", f"{self.input_topic}: {info.event}")
        self._publish(command if self.enabled else self.driver.schema.stop(command.stamp_ns))
        self.commands += 1
        self._publish_state()

    # -- publishing -------------------------------------------------------------------------------------------------

    def _publish(self, command: Command) -> None:
        self.publisher.publish(command_to_twist(command, stamped=self.params.stamped, frame_id=self.params.frame_id))

    def _publish_state(self) -> None:
        activity = np.ascontiguousarray(self.driver.activity, dtype=np.float32).reshape(-1)
        msg = Float32MultiArray()
        msg.layout.dim = [MultiArrayDimension(label="neurons", size=activity.size, stride=activity.size)]
        msg.data = activity.tolist()
        self.state_publisher.publish(msg)

    def _log(self, level: str, message: str) -> None:
        if not self._throttle(problem_key(message)):
            return
        logger = self.node.get_logger()  # rclpy wants one severity per call site: one call each
        if level == "error":
            logger.error(message)
        elif level == "warning":
            logger.warning(message)
        else:
            logger.info(message)

    # -- watchdog, services, parameters --------------------------------------------------------------------------------

    def _check_watchdog(self) -> None:
        now = self.node.get_clock().now()
        if not self.watchdog.expired(now.nanoseconds):
            return
        if not self.stopped:
            self.stopped = True
            since = "yet" if self.watchdog.last_ns is None else f"for {self.watchdog.timeout_ns / 1e9} s"
            self._log("warning", f"{self.input_topic}: no input {since}: publishing zero velocity until it returns")
        self._publish(self.driver.schema.stop(now.nanoseconds))

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self.driver.reset()
        self.node.get_logger().info("state reset on request")
        response.success = True
        response.message = "state reset"
        return response

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        self.enabled = bool(request.data)
        response.success = True
        response.message = "enabled" if self.enabled else "disabled: publishing zero velocity"
        self.node.get_logger().info(response.message)
        return response

    def _apply(self, params: CommandParams) -> None:
        self.params = params
        self.watchdog.timeout_ns = int(params.timeout * 1e9)

    def summary(self) -> str:
        """One line for the shutdown log."""
        return f"{self.faults} non-finite outputs"

    # -- diagnostics ------------------------------------------------------------------------------------------------

    def watchdog_report(self) -> Report:
        """OK while input arrives within ``timeout``; WARN before the first (or while disabled), else ERROR."""
        now = self.node.get_clock().now().nanoseconds
        last, timeout_s = self.watchdog.last_ns, self.watchdog.timeout_ns / 1e9
        age = age_report("input", last, now)
        values = {"topic": self.input_topic, **age.values, "timeout (s)": timeout_s, "holding zero": self.stopped,
                  "enabled": self.enabled}
        if not self.watchdog.expired(now):
            return Report.ok(f"input within {timeout_s:g} s ({age.message})", **values)
        if last is None:
            return Report.warn(f"no input yet on {self.input_topic}: publishing zero velocity", **values)
        text = f"no input on {self.input_topic} for more than {timeout_s:g} s: publishing zero velocity"
        return Report.error(text, **values) if self.enabled else Report.warn(text + " (disabled)", **values)

    def output_report(self) -> Report:
        """Enabled or disabled, commands and the latest one's age; ERROR when the latest output was not finite."""
        now = self.node.get_clock().now().nanoseconds
        topic = self.publisher.topic_name
        # a command goes out for every input the watchdog is fed with, in the same callback
        age = age_report("command", self.watchdog.last_ns, now, missing=Level.OK)
        values = {"topic": topic, "enabled": self.enabled, "commands": self.commands, **age.values,
                  "non-finite outputs": self.faults}
        if self.driver.last.fault:
            return Report.error(f"the latest network output was not finite ({self.driver.last.raw}): state reset, "
                                "zero velocity", **values)
        if not self.enabled:
            return Report.ok(f"disabled: zero velocity on {topic} until "
                             f"{self.node.resolve_service_name('~/enable')} is called with true", **values)
        return Report.ok(f"enabled: the network's commands on {topic}", **values)

    def add_diagnostics(self, diagnostics: Diagnostics) -> None:
        """Add the ``watchdog`` and ``output`` checks."""
        diagnostics.add("watchdog", self.watchdog_report)
        diagnostics.add("output", self.output_report)


class PolicyNode(Node):
    """Features on ``lnn/features`` -> commands on ``cmd_vel`` (the policy half of the path)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("policy_node", **kwargs)
        model = declare_config(self, ModelParams)
        self.driver = build_driver(self, model)
        self.features = self.driver.policy.config.features
        self.subscription = self.create_subscription(Image, FEATURES_TOPIC, self._on_features, SENSOR)
        self.output = CommandOutput(self, self.driver, self.subscription.topic_name)
        self.received = 0
        self.dropped = 0
        self._throttle = Throttle()
        self.health = InputHealth("features")
        self.diagnostics = Diagnostics(self, hardware_id=model.model or "shipped")
        self.diagnostics.add("features", self._features_report)
        self.output.add_diagnostics(self.diagnostics)
        self.diagnostics.add("model", lambda: model_report(model.model, model.inference, self.driver, model.threads))
        self.get_logger().info(f"{self.subscription.topic_name} -> {self.output.publisher.topic_name}")

    def _now(self) -> int:
        return self.get_clock().now().nanoseconds

    def _on_features(self, msg: Image) -> None:
        self.received += 1
        now = self._now()
        self.health.received(now)
        try:
            features = features_from_msg(msg, self.features)
        except ValueError as exc:
            self.dropped += 1
            self.health.dropped(now, exc)
            problem = f"{self.subscription.topic_name}: features dropped: {exc}"
            if self._throttle(problem_key(problem)):
                self.get_logger().warning(f"{problem} ({self.dropped} of {self.received} dropped so far)")
            return
        self.output.step(features, msg.header)

    def _features_report(self) -> Report:
        return self.health.report(self._now(), topic=self.subscription.topic_name, received=self.received,
                                  dropped=self.dropped)

    def destroy_node(self) -> None:
        topic = self.subscription.topic_name
        log_summary(self, f"{topic}: {self.received} received, {self.dropped} dropped; {self.output.summary()}")
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(PolicyNode, args)


if __name__ == "__main__":
    sys.exit(main())

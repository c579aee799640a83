"""drone_demonstrator_node: the drone simulator's demonstrator, flying on the teleop topic as a person would.

The flying is :class:`lnn_control.sim.drone.DroneExpert` (pursuit of the target, avoidance of trunks and buildings,
altitude hold); this node feeds it the privileged state sim_node publishes and sends what it decides:

- ``sim/episode`` (latched JSON): the ``start`` event carries the task and the obstacles' footprints;
- ``sim/truth`` (Float64MultiArray with named values): every frame's drone state (position, attitude, velocity,
  target position, ...); the target's velocity (the ``track`` task) is estimated from consecutive frames.

**Output** ``teleop/cmd_vel`` (Twist, or TwistStamped with ``stamped: true``) in ``base_link``: ``linear.x/y/z`` =
``vx, vy, vz`` (m/s, body FLU), ``angular.z`` = yaw rate (rad/s, counter-clockwise), stamped with the sim time of
the state it answers (so a lockstep sim_node counts it as the answer to that frame). ``~/label`` carries the clean
command beside it: with ``imperfect: true`` the executed command has Ornstein-Uhlenbeck noise and drifts (as in
DART) while the label stays the expert's; record the label as the training target (it is transient local, as the
car demonstrator's, so a recorder matching late still gets the first labels). ``label_only: true`` publishes
only ``~/label`` (a policy flies, the demonstrator labels every state it reaches: DAgger). ``intervene: true``
(DAgger with interventions, config/drone_dagger.yaml) labels every state and flies, with the clean label, only while
it takes over (:mod:`lnn_control.sim.drone.takeover`: near an obstacle, target lost, too low or too high), so the
mux hands the drone to it as to a person and back to the policy when it lets go.

One command per frame, as soon as its truth arrives. The state topics are a simulator's privilege; a learned policy
never subscribes them.

**Diagnostics** (``/diagnostics`` every ``diagnostics_period`` s, :mod:`lnn_control.ros.diagnostics`):
``drone_demonstrator_node: expert`` (episode, task, commands, takeovers; WARN until an episode's task arrived) and
``drone_demonstrator_node: truth`` (node-clock age of the latest truth row; WARN when none arrived or it is older
than :data:`TRUTH_WARN_S`).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
from rclpy.node import Node
from std_msgs.msg import Float64MultiArray, String

from lnn_control.command import Command
from lnn_control.health import Report, age_report
from lnn_control.nodes.simulator import EPISODE_QOS, EPISODE_TOPIC, TRUTH_TOPIC, truth_values
from lnn_control.ros.diagnostics import Diagnostics
from lnn_control.ros.msgs import command_to_twist, twist_type
from lnn_control.ros.node_util import Throttle, declare_config, param, run_node
from lnn_control.ros.qos import COMMAND, KEPT
from lnn_control.sim.drone.expert import DroneExpert, DroneExpertConfig
from lnn_control.sim.drone.state import state_from_row
from lnn_control.sim.drone.takeover import DroneTakeover, TakeoverConfig
from lnn_control.sim.drone.tasks import task_spec

TELEOP_TOPIC = "teleop/cmd_vel"
LABEL_TOPIC = "~/label"
#: The truth diagnostic warns when the latest row is older than this, s (node clock).
TRUTH_WARN_S = 1.0


@dataclass(frozen=True)
class DroneDemonstratorConfig:
    """Parameters of drone_demonstrator_node (config/drone_sim.yaml)."""

    stamped: bool = param(False, "publish geometry_msgs/TwistStamped (stamped with the state's sim time)")
    frame_id: str = param("base_link", "header frame_id of TwistStamped commands")
    seed: int = param(0, "seed of the imperfection; episode k uses seed + k", min=0, max=2**31 - 1)
    imperfect: bool = param(False, "noise and drifts on the executed command (the label stays clean): recordings "
                                   "that show recoveries")
    label_only: bool = param(False, "publish only ~/label, not teleop/cmd_vel (a policy flies; DAgger labels)")
    intervene: bool = param(False, "DAgger with interventions: a policy flies, the demonstrator labels every state "
                                   "and flies (on teleop/cmd_vel, its clean label) only while it takes over")
    intervene_clearance: float = param(0.5, "intervene: take over closer than this to an obstacle, m",
                                       min=0.0, max=10.0)
    intervene_bearing: float = param(50.0, "intervene: ... or with the target more than this off the camera axis, "
                                           "degrees", min=1.0, max=180.0)
    min_altitude: float = param(0.6, "intervene: ... or below this, m", min=0.0, max=100.0)
    max_altitude: float = param(5.0, "intervene: ... or above this, m", min=0.0, max=100.0)
    release_clearance: float = param(1.0, "intervene: hand back with this much clearance, m", min=0.0, max=10.0)
    release_bearing: float = param(15.0, "intervene: ... and the target this close to the camera axis, degrees",
                                   min=0.0, max=180.0)
    min_takeover_s: float = param(1.0, "intervene: shortest takeover, s of sim time", min=0.0, max=3600.0)

    def takeover(self) -> TakeoverConfig:
        """The intervention thresholds."""
        return TakeoverConfig(self.intervene_clearance, self.intervene_bearing, self.min_altitude, self.max_altitude,
                              self.release_clearance, self.release_bearing, self.min_takeover_s)


class DroneDemonstratorNode(Node):
    """See the module docstring."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("drone_demonstrator_node", **kwargs)
        self.config = c = declare_config(self, DroneDemonstratorConfig)
        expert_config = DroneExpertConfig.imperfect() if c.imperfect else DroneExpertConfig()
        self.expert_config = expert_config
        self.expert = DroneExpert(None, expert_config, seed=c.seed)
        self.takeover = DroneTakeover(c.takeover())
        msg_type = twist_type(c.stamped)
        self.publisher = self.create_publisher(msg_type, TELEOP_TOPIC, COMMAND)
        self.label_publisher = self.create_publisher(msg_type, LABEL_TOPIC, KEPT)
        self.create_subscription(String, EPISODE_TOPIC, self._on_episode, EPISODE_QOS)
        self.create_subscription(Float64MultiArray, TRUTH_TOPIC, self._on_truth, COMMAND)
        self._throttle = Throttle(5.0)
        self.episode: int | None = None
        self.task = None
        self.obstacles = np.zeros((0, 3))
        self.previous_target: tuple[float, np.ndarray] | None = None  # (time, position) of the last row
        self.commands = 0
        self.truth_ns: int | None = None  # node clock at the latest truth row of the current episode
        self.diagnostics = Diagnostics(self)
        self.diagnostics.add("expert", self._expert_report)
        self.diagnostics.add("truth", self._truth_report)
        self.get_logger().info(
            f"{self.resolve_topic_name(TRUTH_TOPIC)} -> "
            f"{self.label_publisher.topic_name if c.label_only else self.publisher.topic_name} "
            f"({'TwistStamped' if c.stamped else 'Twist'}; {'imperfect' if c.imperfect else 'clean'}); waiting for "
            f"an episode on {self.resolve_topic_name(EPISODE_TOPIC)}"
        )

    def _on_episode(self, msg: String) -> None:
        topic = self.resolve_topic_name(EPISODE_TOPIC)
        try:
            event = json.loads(msg.data)
            if event.get("event") != "start":
                return
            task = task_spec(str(event["task"]))
            obstacles = np.asarray(event["obstacles"], dtype=float).reshape(-1, 3)
            episode = int(event.get("episode", 0))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            self._warn("episode", f"{topic}: a start event without a drone task and obstacles ({exc}): not flying")
            return
        self.task, self.obstacles, self.episode = task, obstacles, episode
        self.expert = DroneExpert(None, self.expert_config, seed=self.config.seed + episode)
        self.takeover.reset()
        self.previous_target = None
        self.get_logger().info(f"episode {episode}: {task.name}, {len(obstacles)} obstacles")

    def _on_truth(self, msg: Float64MultiArray) -> None:
        try:
            row = truth_values(msg)
            if self.task is None or int(row["episode"]) != self.episode:
                return
            target = np.array([row[f"target_position_{i}"] for i in range(3)])
            velocity = self._target_velocity(float(row["time"]), target)
            state = state_from_row(row, self.task, self.obstacles, velocity)
        except (ValueError, KeyError) as exc:
            self._warn("truth", f"{self.resolve_topic_name(TRUTH_TOPIC)}: not a drone's truth ({exc}): not flying")
            return
        stamp_ns = int(round(row["time"] * 1e9))
        self.truth_ns = self.get_clock().now().nanoseconds
        action = self.expert.act(state, stamp_ns)
        self.commands += 1
        if self.config.intervene:
            before = self.takeover.takeovers
            if self.takeover.update(state):
                self._send(self.publisher, action.label, stamp_ns)  # the clean command while it flies
            if self.takeover.takeovers > before and self._throttle("takeover"):
                self.get_logger().info(f"takeover {self.takeover.takeovers} at {row['time']:.2f} s: "
                                       f"{self.takeover.reason}")
        elif not self.config.label_only:
            self._send(self.publisher, action.command, stamp_ns)
        self._send(self.label_publisher, action.label, stamp_ns)

    def _target_velocity(self, time_s: float, target: np.ndarray) -> np.ndarray:
        previous, self.previous_target = self.previous_target, (time_s, target)
        if previous is None or time_s <= previous[0]:
            return np.zeros(3)
        return (target - previous[1]) / (time_s - previous[0])

    def _send(self, publisher: Any, command: Command, stamp_ns: int) -> None:
        stamped = command.restamped(stamp_ns)
        publisher.publish(command_to_twist(stamped, stamped=self.config.stamped, frame_id=self.config.frame_id))

    def _expert_report(self) -> Report:
        c, t = self.config, self.takeover
        values: dict[str, Any] = {
            "episode": self.episode, "task": None if self.task is None else self.task.name,
            "obstacles": len(self.obstacles), "commands": self.commands,
            "mode": "intervene" if c.intervene else "label only" if c.label_only else "fly",
        }
        if c.intervene:
            values.update({"takeovers": t.takeovers, "states flown": t.states})
        if self.task is None:
            return Report.warn(f"no drone episode yet on {self.resolve_topic_name(EPISODE_TOPIC)}: not flying",
                               **values)
        return Report.ok(f"episode {self.episode}: {self.task.name}", **values)

    def _truth_report(self) -> Report:
        return age_report("truth", self.truth_ns, self.get_clock().now().nanoseconds, warn_s=TRUTH_WARN_S)

    def _warn(self, key: str, message: str) -> None:
        if self._throttle(key):
            self.get_logger().warning(message)

    def close(self) -> None:
        """The closing line (called by run_node while the context lives)."""
        extra = (f"; {self.takeover.takeovers} takeovers, {self.takeover.states} states flown by the demonstrator"
                 if self.config.intervene else "")
        self.get_logger().info(f"{self.commands} commands{extra}")


def main(args: list[str] | None = None) -> int:
    return run_node(DroneDemonstratorNode, args)


if __name__ == "__main__":
    sys.exit(main())

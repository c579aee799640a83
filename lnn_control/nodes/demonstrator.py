"""demonstrator_node: the simulator's expert driver, publishing on the teleop topic as a person at a keyboard would.

The driving logic is :class:`lnn_control.sim.expert.Expert` (pure pursuit on the track centreline and a curvature
speed profile; see that module); this node only feeds it and publishes what it decides.

**Privileged state, over topics.** The demonstrator runs as a node of its own, not inside sim_node: sim_node
publishes the track once per episode (inside the ``start`` event on ``sim/episode``, latched) and the vehicle state
with every frame (``sim/pose``, geometry_msgs/PoseStamped, and ``sim/velocity``, geometry_msgs/TwistStamped, with
the frame's stamp). So the demonstrator starts, stops and restarts like any teleop, runs in its own process or
beside the sim (``lnn-control up`` in one process), and can label states while something else drives (DAgger: remap
its output away from the mux and record it). The state topics are a simulator's privilege; a learned policy never
subscribes them.

**Output** ``teleop/cmd_vel`` (geometry_msgs/Twist, or TwistStamped with ``stamped: true``): ``angular.z`` =
steering in [-1, 1], +1 full left; ``linear.x`` = target speed, m/s: the same topic and type as
teleop_keyboard_node, so the command mux and the recorder treat it as a person. Stamps: the sim time of the state
the command answers (which is the camera frame's stamp, so a lockstep sim counts it as the answer to that frame).
``~/label`` carries the clean expert command (same type and stamp) beside the executed one: with imperfection on,
record it as the training target (noise injection as in DART: the data shows drifting off and coming back, while
the label is always the expert's correction). It is transient local (keep last 50, ``KEPT`` in
:mod:`lnn_control.ros.qos`): a recorder that subscribes it ``latched`` and matches a moment late still gets the first
labels.

**When it publishes** (``rate``): ``0`` (default): one command per vehicle state, as soon as the pose and velocity
of one stamp have both arrived, which keeps a lockstep sim stepping at full speed. A state shown again (the same
stamp: a lockstep sim's start-up re-publication) gets the same messages again, so a sim waiting for ``~/label``
(``lockstep_with``) sees the label even if its subscription matched after the first. ``> 0``: a timer at that rate on
the node clock (sim time under ``use_sim_time``) publishes the command for the latest state, the way a keyboard
teleop repeats; nothing is published while the state is older than ``state_timeout`` (the sim stopped), so the mux
falls back as it would for a person who let go.

**Intervention** (``intervene: true``, DAgger with interventions as in HG-DAgger, Kelly et al. 2019): something
else drives (a learned policy on the mux's ``lnn/cmd_vel``) and the demonstrator labels every state on ``~/label``,
but publishes on ``teleop/cmd_vel`` only while it takes over, so the mux hands the car to it as to a person and back
to the policy when it stops. It takes over when the car is more than ``intervene_offset`` metres from the centreline
or its heading is more than ``intervene_heading`` off the track's, and hands back once the car is within
``release_offset`` and ``release_heading`` again and at least ``min_takeover_s`` (sim time) have passed. While it
drives it publishes the clean label's steering (no imperfection: the data should show the expert's recovery, not
noise on top of it) with the target speed capped at ``intervene_speed``, as a person taking over slows down: the
expert's recovery from a policy's error at speed is unreliable (driving the shipped LTC policy on training seeds
101 and 102, it spun the car off the road at 50-60 m/s and drove donuts on the grass for the rest of the episode;
capped at 30 m/s it brought the car back every time and all four episodes finished their lap). The label on
``~/label`` stays the uncapped expert command. Takeovers are logged (throttled) and counted. The mux's
``input.teleop.timeout`` must outlast one frame (20 ms) so the policy's command for a state cannot slip in before the
demonstrator's; config/dagger.yaml sets 0.03 s.

**Imperfection** (``steering_noise``, ``drift_rate``, ...): mapped one to one onto
:class:`~lnn_control.sim.expert.ExpertConfig` (Ornstein-Uhlenbeck steering noise and occasional drifts with
recovery, applied to the executed command only). Off by default; config/sim.yaml turns a moderate amount on for
recording, because data from a perfect driver never shows a recovery and a policy trained on it compounds its first
error. Episode k's noise is seeded with ``seed + k``. Intervention mode never applies it.

**Diagnostics** (``/diagnostics`` every ``diagnostics_period`` s, :mod:`lnn_control.ros.diagnostics`):
``demonstrator_node: expert`` (episode, commands, drifts or takeovers; WARN until a track arrived) and
``demonstrator_node: vehicle state`` (node-clock age of the latest pose and velocity; WARN when none arrived or it
is older than ``state_timeout``).
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
from geometry_msgs.msg import PoseStamped, TwistStamped
from rclpy.node import Node
from std_msgs.msg import String

from lnn_control.command import Command
from lnn_control.health import Report, age_report
from lnn_control.nodes.simulator import EPISODE_QOS, EPISODE_TOPIC, POSE_TOPIC, VELOCITY_TOPIC
from lnn_control.ros.diagnostics import Diagnostics
from lnn_control.ros.msgs import command_to_twist, twist_type
from lnn_control.ros.node_util import Throttle, declare_config, param, run_node
from lnn_control.ros.qos import COMMAND, KEPT
from lnn_control.ros.stamps import stamp_to_ns
from lnn_control.sim.base import Truth
from lnn_control.sim.expert import Expert, ExpertConfig
from lnn_control.sim.track import Track, TrackLocator

TELEOP_TOPIC = "teleop/cmd_vel"
LABEL_TOPIC = "~/label"
_EXPERT = ExpertConfig()


@dataclass(frozen=True)
class DemonstratorConfig:
    """Parameters of demonstrator_node (config/sim.yaml); the expert's are named as in ExpertConfig."""

    stamped: bool = param(False, "publish geometry_msgs/TwistStamped instead of Twist")
    frame_id: str = param("base_link", "header frame_id of TwistStamped commands")
    rate: float = param(
        0.0, "Hz of commands on the node clock, like a teleop's repeat; 0: one command per vehicle state", min=0.0,
        max=1000.0,
    )
    state_timeout: float = param(
        0.5, "rate > 0: publish nothing while the latest state is older than this, s (node clock)", min=0.001,
        max=3600.0,
    )
    seed: int = param(0, "seed of the imperfection noise; episode k uses seed + k", min=0, max=2**31 - 1)
    steering_noise: float = param(
        _EXPERT.steering_noise, "std of the Ornstein-Uhlenbeck steering noise, steering units; 0: off", min=0.0,
        max=1.0,
    )
    noise_tau_s: float = param(_EXPERT.noise_tau_s, "correlation time of the steering noise, s", min=0.001, max=60.0)
    drift_rate_hz: float = param(_EXPERT.drift_rate_hz, "mean drift episodes per second; 0: off", min=0.0, max=100.0)
    drift_duration_min_s: float = param(_EXPERT.drift_duration_s[0], "shortest drift, s", min=0.0, max=60.0)
    drift_duration_max_s: float = param(_EXPERT.drift_duration_s[1], "longest drift, s", min=0.0, max=60.0)
    drift_steering: float = param(_EXPERT.drift_steering, "steering bias held during a drift (random sign)",
                                  min=0.0, max=1.0)
    v_max: float = param(_EXPERT.v_max, "top target speed, m/s", min=0.0, max=1000.0)
    v_recover: float = param(_EXPERT.v_recover, "target speed off the road or facing away from the track, m/s",
                             min=0.0, max=1000.0)
    a_lat: float = param(_EXPERT.a_lat, "lateral acceleration allowed in corners, m/s^2", min=0.1, max=1000.0)
    steer_max_rad: float = param(
        _EXPERT.steer_max_rad, "front-wheel angle of steering = +-1, rad (must match sim_node's)", min=0.01, max=1.0
    )
    intervene: bool = param(
        False, "DAgger: publish on teleop/cmd_vel (the clean label) only while taking over; ~/label for every state"
    )
    intervene_offset: float = param(
        5.5, "intervene: take over beyond this distance of the car from the centreline, m", min=0.0, max=1000.0
    )
    intervene_heading: float = param(
        0.8, "intervene: take over beyond this heading error against the track, rad", min=0.0, max=math.pi
    )
    release_offset: float = param(
        2.0, "intervene: hand back within this distance from the centreline (and release_heading), m", min=0.0,
        max=1000.0,
    )
    release_heading: float = param(
        0.3, "intervene: hand back within this heading error (and release_offset), rad", min=0.0, max=math.pi
    )
    min_takeover_s: float = param(
        0.5, "intervene: shortest takeover, s of the state stamps (sim time)", min=0.0, max=3600.0
    )
    intervene_speed: float = param(
        30.0, "intervene: target speed cap while taking over, m/s (the label stays uncapped); 0: no cap", min=0.0,
        max=1000.0,
    )

    def expert(self) -> ExpertConfig:
        """The :class:`ExpertConfig` these parameters describe (the other gains keep their defaults)."""
        if self.drift_duration_min_s > self.drift_duration_max_s:
            raise ValueError(
                f"parameter 'drift_duration_min_s' ({self.drift_duration_min_s}) is above 'drift_duration_max_s' "
                f"({self.drift_duration_max_s})"
            )
        return ExpertConfig(
            steering_noise=self.steering_noise,
            noise_tau_s=self.noise_tau_s,
            drift_rate_hz=self.drift_rate_hz,
            drift_duration_s=(self.drift_duration_min_s, self.drift_duration_max_s),
            drift_steering=self.drift_steering,
            v_max=self.v_max,
            v_recover=self.v_recover,
            a_lat=self.a_lat,
            steer_max_rad=self.steer_max_rad,
        )

    def check(self) -> None:
        """``ValueError`` naming the parameter when the intervention thresholds contradict each other."""
        self.expert()
        if self.release_offset > self.intervene_offset:
            raise ValueError(
                f"parameter 'release_offset' ({self.release_offset}) is above 'intervene_offset' "
                f"({self.intervene_offset}): the demonstrator would never hand back"
            )
        if self.release_heading > self.intervene_heading:
            raise ValueError(
                f"parameter 'release_heading' ({self.release_heading}) is above 'intervene_heading' "
                f"({self.intervene_heading}): the demonstrator would never hand back"
            )


class Takeover:
    """When the demonstrator drives in intervention mode: take over far from the centreline or facing away from the
    track, hand back near it and aligned again after at least ``min_takeover_s`` (hysteresis). ROS-free."""

    def __init__(self, config: DemonstratorConfig) -> None:
        self.config = config
        self.active = False
        self.since_ns = 0
        self.takeovers = 0
        self.states = 0  # states the demonstrator drove

    def reset(self) -> None:
        """A new episode starts with the policy driving."""
        self.active = False

    def update(self, distance: float, heading_error: float, stamp_ns: int) -> bool:
        """Whether the demonstrator drives the state at ``stamp_ns``, the car ``distance`` m from the centreline and
        ``heading_error`` rad off the track's direction. Counts takeovers and driven states."""
        c = self.config
        heading_error = abs(heading_error)
        if not self.active:
            if distance > c.intervene_offset or heading_error > c.intervene_heading:
                self.active = True
                self.since_ns = stamp_ns
                self.takeovers += 1
        elif (
            stamp_ns - self.since_ns >= c.min_takeover_s * 1e9
            and distance <= c.release_offset
            and heading_error <= c.release_heading
        ):
            self.active = False
        self.states += int(self.active)
        return self.active


def track_from_event(event: dict[str, Any]) -> Track:
    """The :class:`Track` of a ``start`` event; ``ValueError`` naming the field that is missing or wrong."""
    track = event.get("track")
    if not isinstance(track, dict):
        raise ValueError("start event has no 'track' (is sim_node's publish_privileged off, or the backend trackless?)")
    try:
        points = np.asarray(track["points"], dtype=np.float64)
        half_width = float(track["half_width"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"start event: bad 'track' ({exc})") from exc
    return Track(points, half_width)


class DemonstratorNode(Node):
    """See the module docstring."""

    def __init__(self, node_name: str = "demonstrator_node", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.config = c = declare_config(self, DemonstratorConfig)
        c.check()
        self.expert = Expert(c.expert())
        self.takeover = Takeover(c)
        self.locator: TrackLocator | None = None
        msg_type = twist_type(c.stamped)
        self.publisher = self.create_publisher(msg_type, TELEOP_TOPIC, COMMAND)
        self.label_publisher = self.create_publisher(msg_type, LABEL_TOPIC, KEPT)
        self.create_subscription(String, EPISODE_TOPIC, self._on_episode, EPISODE_QOS)
        self.create_subscription(PoseStamped, POSE_TOPIC, self._on_pose, COMMAND)
        self.create_subscription(TwistStamped, VELOCITY_TOPIC, self._on_velocity, COMMAND)
        self._throttle = Throttle(5.0)
        self.episode: int | None = None
        self.pose: tuple[int, float, float, float] | None = None  # stamp_ns, x, y, heading
        self.velocity: tuple[int, float, float] | None = None  # stamp_ns, speed, yaw rate
        self.state_received_ns: int | None = None  # node clock
        self.acted_ns: int | None = None  # stamp of the last state acted on (rate 0)
        self.sent: list[tuple[Any, Any]] = []  # (publisher, message) of the last act
        self.commands = 0
        self.drifting_commands = 0
        if c.rate > 0:
            self.create_timer(1.0 / c.rate, self._on_timer)
        self.diagnostics = Diagnostics(self)
        self.diagnostics.add("expert", self._expert_report)
        self.diagnostics.add("vehicle state", self._state_report)
        self.get_logger().info(
            f"{self.resolve_topic_name(POSE_TOPIC)} + {self.resolve_topic_name(VELOCITY_TOPIC)} -> "
            f"{self.publisher.topic_name} ({'TwistStamped' if c.stamped else 'Twist'}, "
            f"{'one per state' if c.rate <= 0 else f'{c.rate:g} Hz'}); {self._mode()}; "
            f"waiting for a track on {self.resolve_topic_name(EPISODE_TOPIC)}"
        )

    def _mode(self) -> str:
        c = self.config
        if c.intervene:
            cap = f"at most {c.intervene_speed:g} m/s" if c.intervene_speed > 0 else "no speed cap"
            return (
                f"intervention mode: labels every state on {self.label_publisher.topic_name}, takes over beyond "
                f"{c.intervene_offset:g} m or {math.degrees(c.intervene_heading):.0f} deg, hands back within "
                f"{c.release_offset:g} m and {math.degrees(c.release_heading):.0f} deg after {c.min_takeover_s:g} s "
                f"at least; no imperfection, {cap} while it drives"
            )
        return f"steering noise {c.steering_noise:g}, drifts {c.drift_rate_hz:g}/s"

    # -- inputs -------------------------------------------------------------------------------------------------------

    def _on_episode(self, msg: String) -> None:
        topic = self.resolve_topic_name(EPISODE_TOPIC)
        try:
            event = json.loads(msg.data)
            if not isinstance(event, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            self._warn("episode", f"{topic}: ignoring an event that is not JSON ({exc})")
            return
        if event.get("event") != "start":
            return
        try:
            track = track_from_event(event)
            episode = int(event.get("episode", 0))
        except (TypeError, ValueError) as exc:
            self._warn("track", f"{topic}: {exc}")
            return
        self.expert.reset(track, seed=self.config.seed + episode)
        self.locator = TrackLocator(track)
        self.takeover.reset()
        self.episode = episode
        self.acted_ns = None
        self.get_logger().info(f"episode {episode}: track of {track.n} points, {track.length:.0f} m")

    def _on_pose(self, msg: PoseStamped) -> None:
        q = msg.pose.orientation
        heading = math.atan2(2.0 * (q.w * q.z + q.x * q.y), 1.0 - 2.0 * (q.y * q.y + q.z * q.z))
        stamp_ns = stamp_to_ns(msg.header.stamp)
        if stamp_ns == self.acted_ns:  # the sim shows the state again (start-up): so do we, the same messages
            for publisher, sent in self.sent:
                publisher.publish(sent)
            return
        self.pose = (stamp_ns, msg.pose.position.x, msg.pose.position.y, heading)
        self._on_state()

    def _on_velocity(self, msg: TwistStamped) -> None:
        self.velocity = (stamp_to_ns(msg.header.stamp), msg.twist.linear.x, msg.twist.angular.z)
        self._on_state()

    def _on_state(self) -> None:
        """Act once per stamp, when the pose and the velocity of that stamp are both in."""
        if self.pose is None or self.velocity is None or self.pose[0] != self.velocity[0]:
            return
        self.state_received_ns = self.get_clock().now().nanoseconds
        if self.config.rate > 0 or self.pose[0] == self.acted_ns:
            return
        self.acted_ns = self.pose[0]
        self._act(self.pose[0])

    def _on_timer(self) -> None:
        if self.state_received_ns is None:
            return
        age = self.get_clock().now().nanoseconds - self.state_received_ns
        if age > self.config.state_timeout * 1e9:
            return
        self._act(self.get_clock().now().nanoseconds)

    # -- output -------------------------------------------------------------------------------------------------------

    def _act(self, stamp_ns: int) -> None:
        self.sent = []
        if self.expert.track is None:
            self._warn("no_track", f"no track yet on {self.resolve_topic_name(EPISODE_TOPIC)}: not driving")
            return
        assert self.pose is not None and self.velocity is not None
        _, x, y, heading = self.pose
        _, speed, yaw_rate = self.velocity
        truth = Truth(speed=speed, position=(x, y), heading=heading, yaw_rate=yaw_rate)
        action = self.expert.act(truth, stamp_ns)
        self.commands += 1
        if self.config.intervene:
            if self._intervenes(x, y, heading, stamp_ns):
                self._send(self.publisher, self._capped(action.label), stamp_ns)
        else:
            self.drifting_commands += int(action.drifting)
            self._send(self.publisher, action.command, stamp_ns)
        self._send(self.label_publisher, action.label, stamp_ns)

    def _capped(self, label: Command) -> Command:
        cap = self.config.intervene_speed
        return label if cap <= 0 or label.velocity <= cap else label.replace(velocity=cap)

    def _intervenes(self, x: float, y: float, heading: float, stamp_ns: int) -> bool:
        """Intervention mode: whether the demonstrator drives this state (logs each takeover, throttled)."""
        assert self.locator is not None
        point = self.locator.locate(x, y)
        tangent = float(self.locator.track.tangent_angle[point.index])
        error = math.remainder(heading - tangent, math.tau)
        before = self.takeover.active
        active = self.takeover.update(point.distance, error, stamp_ns)
        if active and not before and self._throttle("takeover"):
            self.get_logger().info(
                f"takeover {self.takeover.takeovers} at {stamp_ns / 1e9:.2f} s: {point.distance:.1f} m from the "
                f"centreline, heading {math.degrees(error):+.0f} deg off the track "
                f"({self.takeover.states}/{self.commands} states driven so far)"
            )
        return active

    def _send(self, publisher: Any, command: Command, stamp_ns: int) -> None:
        stamped = command.restamped(stamp_ns)
        msg = command_to_twist(stamped, stamped=self.config.stamped, frame_id=self.config.frame_id)
        publisher.publish(msg)
        self.sent.append((publisher, msg))

    # -- diagnostics --------------------------------------------------------------------------------------------------

    def _expert_report(self) -> Report:
        c, t = self.config, self.takeover
        values: dict[str, Any] = {"episode": self.episode, "commands": self.commands, "mode":
                                  "intervene" if c.intervene else "drive", "topic": self.publisher.topic_name}
        if c.intervene:
            values.update({"takeovers": t.takeovers, "states driven": t.states, "driving now": t.active})
        else:
            values["commands while drifting"] = self.drifting_commands
        if self.expert.track is None:
            return Report.warn(f"no track yet on {self.resolve_topic_name(EPISODE_TOPIC)}: not driving", **values)
        what = "taking over" if c.intervene and t.active else "labelling" if c.intervene else "driving"
        return Report.ok(f"episode {self.episode}: {what}", **values)

    def _state_report(self) -> Report:
        now = self.get_clock().now().nanoseconds
        return age_report("vehicle state", self.state_received_ns, now, warn_s=self.config.state_timeout)

    def _warn(self, key: str, message: str) -> None:
        if self._throttle(key):
            self.get_logger().warning(message)

    def destroy_node(self) -> None:
        if self.config.intervene:
            t = self.takeover
            text = (
                f"{self.commands} labels; drove {t.states} states ({t.states / max(1, self.commands):.1%}) in "
                f"{t.takeovers} takeovers"
            )
        else:
            text = f"{self.commands} commands ({self.drifting_commands} while drifting)"
        if self.context.ok():
            self.get_logger().info(text)
        else:
            print(f"[{self.get_name()}] {text}", file=sys.stderr, flush=True)
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Entry point of ``demonstrator_node``."""
    return run_node(DemonstratorNode, args)


if __name__ == "__main__":
    sys.exit(main())

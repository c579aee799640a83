"""sim_node: a simulator backend (CarRacing-v3 by default, or the MuJoCo drone) as a camera and a vehicle on ROS
topics, on sim time.

The node owns a :class:`~lnn_control.sim.base.Simulator` (parameter ``backend``; :data:`BACKENDS` maps names to
factories, so a second backend is one entry there) and is the only source of time for the graph: it publishes
``/clock``, and every other node of the sim sets runs with ``use_sim_time: true``.

**Topics** (relative names, so a namespace or remap applies):

- ``camera/image_raw`` (sensor_msgs/Image, ``rgb8``, ``frame_width`` x ``frame_height``, sensor-data QoS): the frame,
  header stamp = the sim time of the state it shows, ``frame_id`` = parameter ``frame_id``.
- ``/clock`` (rosgraph_msgs/Clock, reliable, keep last 1): sim time, published just before each frame.
- ``cmd_vel`` (subscribed; geometry_msgs/Twist, or TwistStamped with ``stamped: true``): the backend's action
  schema in its Twist fields (:mod:`lnn_control.command`; CarRacing: ``angular.z`` = steering in [-1, 1], +1 full
  left (REP 103), ``linear.x`` = target forward speed, m/s). A command with a NaN or infinite field is replaced by
  the stop command (straight ahead at zero speed), an out-of-range one is clamped
  (:func:`~lnn_control.sim.base.sanitize_command`; CarRacing: ``[-1, 1]`` and ``[0, max_velocity]``), with a warning
  throttled per kind of problem; the simulator keeps stepping.
- ``sim/truth`` (std_msgs/Float64MultiArray, reliable): ground truth of each published frame, the values named,
  comma-separated, in ``layout.dim[0].label`` so a bag is self-describing (CarRacing: :data:`TRUTH_FIELDS`; the
  drone: its 3-D pose, velocity, target-relative state, collided and success; :mod:`lnn_control.sim.truth_rows`).
- ``sim/pose`` (geometry_msgs/PoseStamped, frame ``map_frame``) and ``sim/velocity`` (geometry_msgs/TwistStamped,
  frame ``base_frame``: ``linear.x`` = forward speed m/s, ``angular.z`` = yaw rate rad/s), same stamp as the frame:
  the privileged vehicle state a demonstrator needs; a learned policy must never read them.
- ``odom`` (nav_msgs/Odometry, ``map_frame`` -> ``base_frame``): the vehicle's pose (the drone's in 3-D) and its
  velocity in the heading frame, with every frame; and TF (``map`` -> ``base_link``, ``base_link`` -> the camera
  frame, static) where ``tf2_msgs`` is installed (``publish_tf``). Privileged like sim/pose.
- ``sim/episode`` (std_msgs/String, JSON; reliable, transient local, keep last 10): episode events.
  ``{"event": "start", "episode": k, "seed": s, "backend": ..., "stamp_ns": ..., "dt_ns": ..., "steps_per_frame":
  ..., "frame_size": [h, w], "max_steps": ..., "track": {"half_width": m, "points": [[x, y], ...]}}`` (the track's
  centreline in driving order, for backends with one) and ``{"event": "end", "episode": k, "seed": s, "reason":
  "lap_finished" | "terminated" | "max_steps" | "reset", "steps": n, "score": total reward, "laps": ...,
  "tiles_visited": ..., "tiles_total": ..., "lap_progress": ..., "stamp_ns": ...}``.

- ``/diagnostics`` (diagnostic_msgs/DiagnosticArray, every ``diagnostics_period`` s,
  :mod:`lnn_control.ros.diagnostics`): ``sim_node: simulation`` (episode, seed, step, counters; WARN while
  lockstep waits for a controller), ``sim_node: frame rate`` (frames per wall second over 5 s and the real-time
  factor; WARN when none came for 5 s of a running episode) and ``sim_node: command`` (sim-time age of the last
  command; WARN when none came this episode, or when it is older than ``command_timeout`` and the stop command
  applies).

**Service** ``~/reset`` (std_srvs/Trigger): ends the running episode (reason ``reset``) and starts the next one at
step 0, with seed ``seed + episode index``, whether or not ``episodes`` were already done.

**Stepping.** One *tick* advances ``steps_per_frame`` simulator steps with one command, then publishes the clock,
the truth, the pose, the velocity and, last, the frame of the final step.

- ``lockstep: true``: the frame of tick k+1 is published only after a command *answering* the frame of tick k
  arrived on ``cmd_vel``, so a slow controller never loses sim time. A ``TwistStamped`` answers the pending frame
  when its header stamp is at or after that frame's stamp (or is zero); a ``Twist`` has no stamp, so any command
  received while a frame is pending answers it. The tick runs with the answering command. A command stamped before
  the pending frame (late, or a repeat of an old one) only becomes the held command. If nothing answers within
  ``lockstep_timeout`` seconds of wall time, the tick runs with the held command (the last one received; straight
  ahead at zero speed once it is older than ``command_timeout`` of sim time) and a throttled warning. While no node
  publishes on ``cmd_vel`` the sim does not step (and the timeout does not run): it re-publishes the pending tick's
  messages (same stamps) every second; when a publisher appears, it re-publishes them at once and every 0.25 s
  until the first answer (a controller's publisher can be visible before its subscriptions match), so a controller
  that starts late still gets frame 0 of the episode. (A ``Twist`` controller answers every copy; the copies after
  the first then answer the next ticks early. Only at start-up, and only unstamped.)
  Use ``stamped: true`` whenever something between controller and sim repeats commands on a timer (the command mux
  does, while its input is quiet), or such repeats can answer frames.
- ``lockstep_with`` (topics, default none; config/dagger.yaml and config/drone_dagger.yaml name the demonstrator's
  ``~/label``): in lockstep, a frame steps only once its answer on ``cmd_vel`` *and* a message on each of these
  topics stamped at or after it (same type as ``cmd_vel``; unstamped counts at once) are in; the first answer waits
  for them. A node that watches every state without driving, a DAgger demonstrator, then can never fall behind the
  policy: behind, it would take over on states already gone and, once its queue overflows, lose states (seen here
  once: the drone demonstrator 0.6 s behind, 9 states of a 60-frame flight unlabelled). A timeout steps all the
  same and names the silent topics.
- ``wait_for`` (node names, default none; ``lnn-control up`` and the launch files fill it with the set's nodes that
  take this node's topics: drive_node, the demonstrators, the recorder): the run starts only when every named node
  subscribes one of this node's topics and each publisher has matched (DDS, not just the graph) as many subscriptions
  as those nodes hold. Until then frame 0 of the first episode is held and shown again every second, no timeout
  runs, commands answer nothing (they are held; ``early`` in the summary) and a free-running sim does not tick, with
  a throttled warning saying what is missing (a subscription whose QoS cannot match, say a reliable one on the
  camera, shows as never matched). So a policy that takes seconds to load its model gets frame 0, and a
  demonstrator or recorder that starts late misses nothing (without it the command mux, up first, answers the first
  frames with zeros while drive_node loads). Once started, the run never waits again.
- ``wait_for_recorders`` (recorder node names, default none; filled like ``wait_for`` with the set's recorder_node):
  the run also waits until each recorder's ``~/status`` reports every publisher the graph shows on its topics
  matched (without it a recorder that discovered drive_node late was seen to miss all 41 commands of an episode).
  That is the recorder's side of each match; the publisher's may follow a moment later, so what must be recorded
  from the first message is published transient local (``KEPT``: the policy's commands, the labels) and recorded
  ``latched`` (once, with the recorder matched, 24 of 41 commands were still lost without it).
- ``wait_for_recorded`` (topics, default none; config/dagger.yaml and config/drone_dagger.yaml name the policy's
  commands and the demonstrator's label): the run also waits until each recorder of ``wait_for_recorders`` has
  received a message on each of these topics, published while frame 0 is held (the policy's answer to it, its
  label). A graph that shows no publisher yet passes the check above with nothing to match: once a run started
  so, most likely before drive_node's publisher was in the graph, and its bag got none of the 41 commands.
- ``lockstep: false`` (free-running): a steady-clock timer ticks at ``rate`` Hz with the latest command (held as
  above), so sim time runs ``rate * steps_per_frame * dt`` seconds per wall second while the machine keeps up.

Sim time never runs backwards: episode k starts ``episode_gap`` seconds after episode k-1 ended (and the first one
``episode_gap`` after zero, which ROS reads as "no time yet"), so timers on sim time stay sane across resets, and a
Driver on the other side sees a gap longer than its ``reset_gap`` and starts the new episode with a fresh state.
Episodes end when the backend says so (lap finished, left the playfield) or after ``max_steps``; with ``auto_reset``
the next starts at once until ``episodes`` are done (0: forever), then the node idles until ``~/reset``.

The node's own timers use the steady clock, so it runs the same whether or not its ``use_sim_time`` is set (the
sim sets set it for every node).

The lockstep and hold rules live, free of ROS, in :mod:`lnn_control.sim.lockstep` (tested in simulated time): this
node tells them what it published and received, and steps, re-publishes and logs as they decide.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # CarRacing imports pygame, which greets on stdout

from geometry_msgs.msg import PoseStamped, TransformStamped, TwistStamped  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from rclpy.clock import Clock, ClockType  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from rosgraph_msgs.msg import Clock as ClockMsg  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Float64MultiArray, MultiArrayDimension, String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from lnn_control.command import Command  # noqa: E402
from lnn_control.health import Level, RateMeter, Report, age_report  # noqa: E402
from lnn_control.ros.diagnostics import Diagnostics  # noqa: E402
from lnn_control.ros.msgs import image_msg, twist_to_command, twist_type  # noqa: E402
from lnn_control.ros.node_util import Throttle, declare_config, param, run_node  # noqa: E402
from lnn_control.ros.qos import COMMAND, SENSOR  # noqa: E402
from lnn_control.ros.stamps import ns_to_stamp, stamp_to_ns  # noqa: E402
from lnn_control.sim.base import Observation, Simulator, Truth  # noqa: E402
from lnn_control.sim.closed_loop import episode_outcome  # noqa: E402
from lnn_control.sim.lockstep import (  # noqa: E402, F401 - the constants re-exported for their importers
    LOCKSTEP_CHECK_S,
    REPUBLISH_S,
    STARTUP_REPUBLISH_S,
    Decision,
    LockstepConfig,
    LockstepRules,
    RecorderReport,
    recorder_report,
    unmatched_recorders,
    waiting_for,
)
from lnn_control.sim.truth_rows import CAR_FIELDS, truth_row  # noqa: E402

CAMERA_TOPIC = "camera/image_raw"
CLOCK_TOPIC = "/clock"
#: How often the node looks for a second /clock publisher, s (wall).
CLOCK_CHECK_S = 2.0
CMD_TOPIC = "cmd_vel"
TRUTH_TOPIC = "sim/truth"
POSE_TOPIC = "sim/pose"
VELOCITY_TOPIC = "sim/velocity"
EPISODE_TOPIC = "sim/episode"
ODOM_TOPIC = "odom"
#: Window of the frame-rate diagnostic, s (steady clock).
FRAME_RATE_WINDOW_S = 5.0

#: CarRacing's ``sim/truth`` row (lnn_control.sim.truth_rows); other backends publish their own, named in the layout.
TRUTH_FIELDS = CAR_FIELDS

CLOCK_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE)
#: Episode events: a late joiner (the demonstrator) gets the latest events, the last start among them.
EPISODE_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=10,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)


def _carracing(config: SimNodeConfig) -> Simulator:
    from lnn_control.sim.carracing import CarRacingConfig, CarRacingSim

    return CarRacingSim(
        CarRacingConfig(
            frame_size=(config.frame_height, config.frame_width),
            steer_max_rad=config.steer_max_rad,
            max_velocity=config.max_velocity,
            max_episode_steps=config.max_steps * config.steps_per_frame,
        )
    )


def _drone(config: SimNodeConfig) -> Simulator:
    from lnn_control.sim.drone import DroneSim, DroneSimConfig

    return DroneSim(DroneSimConfig(frame_size=(config.frame_height, config.frame_width), task=config.task,
                                   domain=config.domain))


#: Backend name -> factory from the node's configuration.
BACKENDS: dict[str, Callable[[SimNodeConfig], Simulator]] = {"carracing": _carracing, "drone": _drone}


@dataclass(frozen=True)
class SimNodeConfig:
    """Parameters of sim_node (config/sim.yaml)."""

    backend: str = param("carracing", "simulator backend: carracing (the car) or drone (a MuJoCo quadrotor)",
                         choices=("carracing", "drone"))
    task: str = param("fly-to-target", "drone: the task (fly-to-target, range, hike, track)",
                      choices=("fly-to-target", "range", "hike", "track"))
    domain: str = param("summer", "drone: the scene's looks (summer, fall, winter, urban, dusk, fog, distractor), "
                        "or a mix of one with parts of others (summer+fall.ground)")
    seed: int = param(0, "seed of the first episode; episode k uses seed + k", min=0, max=2**31 - 1)
    episodes: int = param(0, "episodes to run before idling (0: forever)", min=0, max=2**31 - 1)
    max_steps: int = param(1000, "ticks (published frames) per episode before it is cut (reason max_steps)",
                           min=1, max=2**31 - 1)
    auto_reset: bool = param(True, "start the next episode when one ends (else idle until ~/reset)")
    frame_width: int = param(96, "camera frame width, pixels", min=8, max=4096)
    frame_height: int = param(96, "camera frame height, pixels", min=8, max=4096)
    frame_id: str = param("camera", "header frame_id of the camera frames")
    map_frame: str = param("map", "header frame_id of sim/pose and odom (the world frame, REP 105)")
    base_frame: str = param("base_link", "header frame_id of sim/velocity, child frame of odom and TF")
    publish_tf: bool = param(True, "publish TF map -> base_link -> camera frame (needs tf2_msgs, on a ROS install)")
    stamped: bool = param(False, "cmd_vel is geometry_msgs/TwistStamped instead of Twist")
    lockstep: bool = param(True, "publish the next frame only when a command answered the last one (else free-run)")
    lockstep_timeout: float = param(
        0.5, "lockstep: wall seconds to wait for an answer before stepping with the held command", min=0.001, max=3600.0
    )
    rate: float = param(50.0, "free-running: ticks per wall second", min=0.1, max=10000.0)
    steps_per_frame: int = param(1, "simulator steps per tick (one command, one frame)", min=1, max=1000)
    command_timeout: float = param(
        0.5, "sim seconds a received command is held; older: straight ahead at zero speed (0: hold forever)",
        min=0.0, max=3600.0,
    )
    max_velocity: float = param(120.0, "largest accepted target speed, m/s; larger commands are clamped",
                                min=0.0, max=1000.0)
    steer_max_rad: float = param(0.4, "front-wheel angle of steering = +-1, rad (CarRacing's joint stops at 0.4)",
                                 min=0.01, max=1.0)
    episode_gap: float = param(2.0, "sim seconds between the end of an episode and the start of the next",
                               min=0.0, max=3600.0)
    publish_privileged: bool = param(True, "publish sim/pose, sim/velocity and the track (for a demonstrator)")
    lockstep_with: list[str] = param(
        [], "lockstep: topics (Twist or TwistStamped as cmd_vel) that must also answer every frame before it steps"
    )
    wait_for: list[str] = param(
        [], "nodes (names, or /ns/name) that must subscribe this node's topics, matched, before the run starts"
    )
    wait_for_recorders: list[str] = param(
        [], "recorders (names, or /ns/name) whose ~/status must show every publisher of their topics matched before "
        "the run starts"
    )
    wait_for_recorded: list[str] = param(
        [], "topics each recorder of wait_for_recorders must have received a message on before the run starts (what "
        "must be in the bag from the first frame and is published while it is held)"
    )


def quaternion(roll: float, pitch: float, yaw: float) -> tuple[float, float, float, float]:
    """``(x, y, z, w)`` of ZYX Euler angles (rad)."""
    cr, sr = math.cos(roll / 2), math.sin(roll / 2)
    cp, sp = math.cos(pitch / 2), math.sin(pitch / 2)
    cy, sy = math.cos(yaw / 2), math.sin(yaw / 2)
    return (sr * cp * cy - cr * sp * sy, cr * sp * cy + sr * cp * sy, cr * cp * sy - sr * sp * cy,
            cr * cp * cy + sr * sp * sy)


def odometry_msg(truth: Truth, stamp: Any, map_frame: str, base_frame: str) -> Odometry:
    """``nav_msgs/Odometry`` of the vehicle: pose in ``map_frame`` (the drone's 3-D position and attitude; the car's
    plane pose), twist in ``base_frame`` (forward, left, up, and the yaw rate)."""
    msg = Odometry()
    msg.header.stamp = stamp
    msg.header.frame_id = map_frame
    msg.child_frame_id = base_frame
    x, y = truth.position
    position = getattr(truth, "position_3d", (x, y, 0.0))
    roll, pitch, yaw = getattr(truth, "attitude", (0.0, 0.0, truth.heading))
    velocity = getattr(truth, "body_velocity", (truth.speed, 0.0, 0.0))
    p, o = msg.pose.pose.position, msg.pose.pose.orientation
    p.x, p.y, p.z = (float(v) for v in position)
    o.x, o.y, o.z, o.w = quaternion(roll, pitch, yaw)
    v = msg.twist.twist
    v.linear.x, v.linear.y, v.linear.z = (float(u) for u in velocity)
    v.angular.z = float(truth.yaw_rate) if math.isfinite(truth.yaw_rate) else 0.0
    return msg


class TransformOutput:
    """TF of the sim's vehicle: ``map`` -> ``base_link`` with every frame, ``base_link`` -> the camera frame once
    (static). Needs ``tf2_msgs``, which a ROS install has and the PyPI wheels do not: without it the node says so
    once and ``odom`` alone carries the pose."""

    def __init__(self, node: Node, config: SimNodeConfig) -> None:
        try:
            from tf2_msgs.msg import TFMessage
        except ImportError:
            node.get_logger().info("tf2_msgs is not installed (the pip path has no wheel of it): no TF; the pose is "
                                   f"on {node.resolve_topic_name(ODOM_TOPIC)}")
            self.publisher = None
            return
        self.message_type = TFMessage
        self.publisher = node.create_publisher(TFMessage, "/tf", COMMAND)
        static = node.create_publisher(TFMessage, "/tf_static", EPISODE_QOS)
        camera = TransformStamped()
        camera.header.frame_id, camera.child_frame_id = config.base_frame, config.frame_id
        camera.transform.rotation.w = 1.0
        static.publish(TFMessage(transforms=[camera]))
        self._static = static  # kept: a transient-local publisher serves late joiners while it lives

    def messages(self, odom: Odometry) -> list[tuple[Any, Any]]:
        """The ``/tf`` message of one frame (none without tf2_msgs)."""
        if self.publisher is None:
            return []
        transform = TransformStamped()
        transform.header = odom.header
        transform.child_frame_id = odom.child_frame_id
        p = odom.pose.pose.position
        transform.transform.translation.x, transform.transform.translation.y = p.x, p.y
        transform.transform.translation.z = p.z
        transform.transform.rotation = odom.pose.pose.orientation
        return [(self.publisher, self.message_type(transforms=[transform]))]


def end_reason(obs: Observation, steps: int, max_steps: int) -> str | None:
    """Why the episode ends after ``obs`` (``steps`` ticks done), or None if it goes on: the backend's event where it
    names one (the drone: success, collision, out_of_bounds, ...), else terminated or max_steps."""
    if obs.info.get("lap_finished"):
        return "lap_finished"
    if obs.terminated:
        return str(obs.info.get("event") or "terminated")
    if obs.truncated or steps >= max_steps:
        return "max_steps"
    return None


def truth_msg(values: dict[str, float]) -> Float64MultiArray:
    """``sim/truth`` from a row (:func:`lnn_control.sim.truth_rows.truth_row`): the values in order, their names,
    comma-separated, in ``layout.dim[0].label``."""
    msg = Float64MultiArray()
    n = len(values)
    msg.layout.dim = [MultiArrayDimension(label=",".join(values), size=n, stride=n)]
    msg.data = [float(v) for v in values.values()]
    return msg


def truth_values(msg: Float64MultiArray) -> dict[str, float]:
    """``sim/truth`` back to a dict by the names in its layout; ``ValueError`` when names and values do not match."""
    names = msg.layout.dim[0].label.split(",") if msg.layout.dim and msg.layout.dim[0].label else []
    if not names or len(msg.data) != len(names):
        raise ValueError(f"sim/truth layout {','.join(names)!r} does not name its {len(msg.data)} values")
    return dict(zip(names, (float(v) for v in msg.data), strict=True))


class SimNode(Node):
    """See the module docstring."""

    def __init__(self, node_name: str = "sim_node", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.config = c = declare_config(self, SimNodeConfig)
        self.sim = BACKENDS[c.backend](c)
        self.dt_ns = int(self.sim.dt_ns)
        self.image_pub = self.create_publisher(Image, CAMERA_TOPIC, SENSOR)
        self.clock_pub = self.create_publisher(ClockMsg, CLOCK_TOPIC, CLOCK_QOS)
        self.truth_pub = self.create_publisher(Float64MultiArray, TRUTH_TOPIC, COMMAND)
        self.pose_pub = self.create_publisher(PoseStamped, POSE_TOPIC, COMMAND)
        self.velocity_pub = self.create_publisher(TwistStamped, VELOCITY_TOPIC, COMMAND)
        self.episode_pub = self.create_publisher(String, EPISODE_TOPIC, EPISODE_QOS)
        self.odom_pub = self.create_publisher(Odometry, ODOM_TOPIC, COMMAND)
        self.tf = TransformOutput(self, c) if c.publish_tf and c.publish_privileged else None
        self.cmd_sub = self.create_subscription(twist_type(c.stamped), CMD_TOPIC, self._on_command, COMMAND)
        self.cmd_topic = self.cmd_sub.topic_name
        self.companion_subs = []  # lockstep_with, under their full names
        for topic in c.lockstep_with:
            name = self.resolve_topic_name(topic)
            self.companion_subs.append(
                self.create_subscription(twist_type(c.stamped), name, self._companion(name), COMMAND)
            )
        self.recorders: dict[str, RecorderReport | None] = {}  # wait_for_recorders: name -> its latest report
        self.recorded = [self.resolve_topic_name(topic) for topic in c.wait_for_recorded]
        for name in c.wait_for_recorders:
            topic = f"/{name.strip('/')}/status" if "/" in name else f"{name}/status"
            self.recorders[name] = None
            self.create_subscription(String, topic, self._recorder_status(name), 10)
        self.create_service(Trigger, "~/reset", self._on_reset)
        self._throttle = Throttle(5.0)
        steady = Clock(clock_type=ClockType.STEADY_TIME)

        # state
        self.episode = -1
        self.episode_seed = c.seed
        self.steps = 0  # ticks in the episode
        self.running = False
        self.obs: Observation | None = None
        self.time_base_ns = 0  # sim time of the current episode's step 0
        self.end_ns = 0  # sim time of the last published frame
        self.last_messages: list[tuple[Any, Any]] = []  # (publisher, message) of the latest tick, to re-publish
        self.episodes_done = 0
        self.ticks = 0
        self.commands = 0  # received on cmd_vel
        self.missing: list[str] = []  # what the run waits for (wait_for), as of the last check
        self.frame_rate = RateMeter(FRAME_RATE_WINDOW_S, what="frames", start_ns=time.monotonic_ns())
        self.rules = LockstepRules(
            LockstepConfig(
                lockstep=c.lockstep,
                lockstep_timeout=c.lockstep_timeout,
                command_timeout=c.command_timeout,
                wait_at_start=bool(c.wait_for or c.wait_for_recorders),
                companions=tuple(s.topic_name for s in self.companion_subs),
            ),
            self.sim.schema,
            getattr(self.sim, "command_bounds", None),
        )

        if c.lockstep:
            self.timer = self.create_timer(min(c.lockstep_timeout, LOCKSTEP_CHECK_S), self._on_check, clock=steady)
        else:
            self.timer = self.create_timer(1.0 / c.rate, self._on_tick, clock=steady)
        self.create_timer(CLOCK_CHECK_S, self._check_clocks, clock=steady)
        self.diagnostics = Diagnostics(self, hardware_id=self.sim.name)
        self.diagnostics.add("simulation", self._simulation_report)
        self.diagnostics.add("frame rate", self._frame_rate_report)
        self.diagnostics.add("command", self._command_report)
        mode = (
            f"lockstep (timeout {c.lockstep_timeout} s)" if c.lockstep else f"free-running at {c.rate:g} Hz"
        )
        self.get_logger().info(
            f"{self.sim.name} {c.frame_width}x{c.frame_height}, dt {self.dt_ns / 1e9:g} s x {c.steps_per_frame} "
            f"step(s) per frame, {mode}; {CAMERA_TOPIC}, /clock, {TRUTH_TOPIC} <- {self.cmd_topic} "
            f"({'TwistStamped' if c.stamped else 'Twist'}); seed {c.seed}, "
            f"{c.episodes or 'unlimited'} episode(s) of at most {c.max_steps} frames"
        )
        if self.get_parameter("use_sim_time").value:
            self.get_logger().info("use_sim_time is set: this node publishes /clock; its own timers run on the "
                                   "steady clock")
        self._start_episode()

    # -- episodes -----------------------------------------------------------------------------------------------------

    def _start_episode(self) -> None:
        c = self.config
        self.episode += 1
        self.episode_seed = c.seed + self.episode
        obs = self.sim.reset(seed=self.episode_seed)
        self.time_base_ns = self.end_ns + int(round(c.episode_gap * 1e9))
        self.steps = 0
        self.obs = obs
        self.running = True
        self.rules.on_episode_start()
        event: dict[str, Any] = {
            "event": "start",
            "episode": self.episode,
            "seed": self.episode_seed,
            "backend": self.sim.name,
            "stamp_ns": self.time_base_ns,
            "dt_ns": self.dt_ns,
            "steps_per_frame": c.steps_per_frame,
            "frame_size": list(self.sim.frame_size),
            "max_steps": c.max_steps,
        }
        track = self._track()
        if track is not None and c.publish_privileged:
            event["track"] = {
                "half_width": float(track.half_width),
                "points": [[round(float(x), 4), round(float(y), 4)] for x, y in track.points],
            }
        episode_info = getattr(self.sim, "episode_info", None)
        if callable(episode_info) and c.publish_privileged:
            event.update(episode_info())
        self._event(event)
        self.get_logger().info(f"episode {self.episode} (seed {self.episode_seed}) starts at sim time "
                               f"{self.time_base_ns / 1e9:.3f} s")
        self._publish(obs, reward=0.0)

    def _track(self) -> Any:
        try:
            return self.sim.track  # type: ignore[attr-defined]
        except (AttributeError, RuntimeError):
            return None

    def _end_episode(self, reason: str) -> None:
        obs = self.obs
        assert obs is not None
        t = obs.truth
        outcome = episode_outcome(self.sim, obs)
        self._event(
            {
                "event": "end",
                "episode": self.episode,
                "seed": self.episode_seed,
                "reason": reason,
                "steps": self.steps,
                "score": float(t.total_reward),
                "laps": int(t.laps_completed),
                "tiles_visited": int(t.tiles_visited),
                "tiles_total": int(t.tiles_total),
                "lap_progress": float(t.lap_progress),
                "stamp_ns": self.end_ns,
                **{k: v for k, v in outcome.items() if k not in ("event", "episode", "seed", "reason", "stamp_ns")},
            }
        )
        if outcome:
            figures = ", ".join(f"{k} {v}" for k, v in outcome.items())
        else:
            figures = f"score {t.total_reward:.1f}, {t.laps_completed} lap(s), {t.tiles_visited}/{t.tiles_total} tiles"
        self.get_logger().info(
            f"episode {self.episode} (seed {self.episode_seed}) ended ({reason}) after {self.steps} frames: {figures}"
        )
        self.running = False
        self.rules.on_episode_end()
        self.episodes_done += 1

    def _event(self, event: dict[str, Any]) -> None:
        self.episode_pub.publish(String(data=json.dumps(event, separators=(",", ":"))))

    # -- stepping -----------------------------------------------------------------------------------------------------

    def _tick(self, command: Command) -> None:
        """``steps_per_frame`` simulator steps with ``command``, then publish; end (and restart) the episode."""
        c = self.config
        reward = 0.0
        obs = self.obs
        assert obs is not None
        for _ in range(c.steps_per_frame):
            obs = self.sim.step(command)
            reward += obs.truth.reward
            if obs.done:
                break
        self.obs = obs
        self.steps += 1
        self.ticks += 1
        self._publish(obs, reward)
        reason = end_reason(obs, self.steps, c.max_steps)
        if reason is not None:
            self._end_episode(reason)
            if c.auto_reset and (c.episodes == 0 or self.episodes_done < c.episodes):
                self._start_episode()
            else:
                self.get_logger().info(f"{self.episodes_done} episode(s) done: idle until ~/reset")

    def _publish(self, obs: Observation, reward: float) -> None:
        """Publish the clock, the truth, the pose and velocity, then the frame, all stamped with the sim time."""
        c = self.config
        now = self.time_base_ns + int(obs.stamp_ns)
        self.end_ns = now
        stamp = ns_to_stamp(now)
        t = obs.truth
        messages: list[tuple[Any, Any]] = [(self.clock_pub, ClockMsg(clock=stamp))]
        row = truth_row(t, now / 1e9, self.episode, self.steps, reward, bad_commands=self.rules.bad_commands,
                        timeouts=self.rules.timeouts)
        messages.append((self.truth_pub, truth_msg(row)))
        x, y = t.position
        if c.publish_privileged and math.isfinite(x) and math.isfinite(y) and math.isfinite(t.heading):
            pose = PoseStamped()
            pose.header.stamp = stamp
            pose.header.frame_id = c.map_frame
            pose.pose.position.x = float(x)
            pose.pose.position.y = float(y)
            pose.pose.orientation.z = math.sin(t.heading / 2)
            pose.pose.orientation.w = math.cos(t.heading / 2)
            velocity = TwistStamped()
            velocity.header.stamp = stamp
            velocity.header.frame_id = c.base_frame
            velocity.twist.linear.x = float(t.speed)
            velocity.twist.angular.z = float(t.yaw_rate) if math.isfinite(t.yaw_rate) else 0.0
            messages += [(self.velocity_pub, velocity), (self.pose_pub, pose)]
            odom = odometry_msg(t, stamp, c.map_frame, c.base_frame)
            messages.append((self.odom_pub, odom))
            if self.tf is not None:
                messages += self.tf.messages(odom)
        messages.append(
            (self.image_pub, image_msg(obs.frame, encoding="rgb8", stamp_ns=now, frame_id=c.frame_id))
        )
        self.last_messages = messages
        self._send(messages)
        wall = time.monotonic_ns()
        self.rules.on_frame(now, wall)
        self.frame_rate.tick(wall)

    def _send(self, messages: list[tuple[Any, Any]]) -> None:
        for publisher, msg in messages:
            publisher.publish(msg)

    def _on_command(self, msg: Any) -> None:
        self.commands += 1
        self._apply(self.rules.on_command(twist_to_command(msg, self.sim.schema), stamped=hasattr(msg, "header")))

    def _companion(self, topic: str) -> Callable[[Any], None]:
        def on_message(msg: Any) -> None:
            stamp = stamp_to_ns(msg.header.stamp) if hasattr(msg, "header") else 0
            self._apply(self.rules.on_companion(topic, stamp, stamped=hasattr(msg, "header")))

        return on_message

    def _recorder_status(self, name: str) -> Callable[[String], None]:
        def on_status(msg: String) -> None:
            try:
                self.recorders[name] = recorder_report(msg.data)
            except ValueError as exc:
                self._warn("status", f"{name}/status: {exc}; still waiting for it")

        return on_status

    def _on_check(self) -> None:
        """Lockstep: wait for a controller, re-publish for a new one, step with the held command on a timeout."""
        if not self.running or self.rules.pending_ns is None:
            return
        present = self.count_publishers(self.cmd_topic) > 0
        self._apply(self.rules.on_check(time.monotonic_ns(), present, self._ready()))

    def _on_tick(self) -> None:
        """Free-running: one tick per timer period with the held command."""
        if self.running:
            ready = self._ready()
            if not ready:
                self._warn_waiting("tick")
            self._apply(self.rules.on_free_tick(ready))

    def _ready(self) -> bool:
        """The nodes of ``wait_for`` all subscribe this node's topics, matched, and the recorders of
        ``wait_for_recorders`` have matched every publisher of theirs (checked until the run starts)."""
        if self.rules.started:
            return True
        publishers = [self.image_pub, self.truth_pub, self.pose_pub, self.velocity_pub, self.episode_pub,
                      self.odom_pub]
        subscribers = {
            p.topic_name: [f"{i.node_namespace.rstrip('/')}/{i.node_name}"
                           for i in self.get_subscriptions_info_by_topic(p.topic_name)]
            for p in publishers
        }
        matched = {p.topic_name: p.get_subscription_count() for p in publishers}
        topics = {t for report in self.recorders.values() if report is not None for t in report.matched}
        self.missing = waiting_for(self.config.wait_for, subscribers, matched) + unmatched_recorders(
            self.recorders, {t: self.count_publishers(t) for t in topics}, self.recorded)
        return not self.missing

    def _apply(self, decision: Decision) -> None:
        """Re-publish, log and step as the lockstep rules decided."""
        rules = self.rules
        if decision.republish:
            if decision.waiting and not self.rules.started:
                self._warn_waiting("step")
            elif decision.waiting:
                self._warn("nobody", f"{self.cmd_topic}: no publisher: waiting for a controller")
            self._send(self.last_messages)
        if decision.problem is not None:
            self._warn(decision.problem.split(" (")[0],
                       f"{self.cmd_topic}: {decision.problem} ({rules.bad_commands} bad so far)")
        if decision.stale:
            self._warn("stale", f"{self.cmd_topic}: no command for more than {self.config.command_timeout:g} s of "
                                "sim time: applying the stop command")
        command = decision.tick_with
        if decision.timeout and command is not None and decision.unanswered_ns is not None:
            silent = (f"{', '.join(decision.missing)} (lockstep_with): nothing for" if decision.missing
                      else f"{self.cmd_topic}: no command answered")
            self._warn(
                "timeout",
                f"{silent} the frame at {decision.unanswered_ns / 1e9:.3f} s within "
                f"{self.config.lockstep_timeout:g} s: stepping with {command.describe()} ({rules.timeouts} timeouts "
                "so far)",
            )
        if command is not None:
            self._tick(command)

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        if self.running:
            self._end_episode("reset")
        self._start_episode()
        response.success = True
        response.message = f"episode {self.episode} started with seed {self.episode_seed}"
        return response

    def _check_clocks(self) -> None:
        """Another publisher on /clock (a second simulator on this domain) mixes two sim times in every bag."""
        clocks = self.count_publishers(CLOCK_TOPIC)
        if clocks > 1:
            self._warn("clocks", f"{clocks} publishers on {CLOCK_TOPIC} (ROS_DOMAIN_ID="
                                 f"{os.environ.get('ROS_DOMAIN_ID', '0')}): is another simulator running? Nodes on "
                                 "sim time then see two clocks")

    def _warn_waiting(self, first: str) -> None:
        self._warn("nodes", f"waiting for {', '.join(self.missing)} before the first {first} (wait_for)")

    def _warn(self, key: str, message: str) -> None:
        if self._throttle(key):
            suppressed = self._throttle.take_suppressed(key)
            self.get_logger().warning(message + (f" [{suppressed} similar suppressed]" if suppressed else ""))

    # -- diagnostics --------------------------------------------------------------------------------------------------

    def _waiting(self) -> bool:
        """Lockstep holds a frame and nobody publishes on cmd_vel (as of the last check)."""
        return bool(self.config.lockstep and self.running and self.rules.pending_ns is not None
                    and not self.rules.controller_present)

    def _simulation_report(self) -> Report:
        rules, c = self.rules, self.config
        values = {
            "backend": self.sim.name if self.sim is not None else "closed",
            "episode": self.episode,
            "seed": self.episode_seed,
            "step": self.steps,
            "running": self.running,
            "episodes done": self.episodes_done,
            "frames": self.ticks,
            "sim time (s)": self.end_ns / 1e9,
            "lockstep": c.lockstep,
            "answered": rules.answered,
            "lockstep timeouts": rules.timeouts,
            "late commands": rules.late_commands,
            "early commands": rules.early_commands,
            "bad commands": rules.bad_commands,
        }
        if not self.running:
            return Report.ok(f"idle after {self.episodes_done} episode(s): call ~/reset for the next", **values)
        if not self.rules.started:
            return Report.warn(f"episode {self.episode}: waiting for {', '.join(self.missing)} (wait_for)", **values)
        if self._waiting():
            return Report.warn(f"episode {self.episode}: waiting for a controller on {self.cmd_topic}", **values)
        return Report.ok(f"episode {self.episode} (seed {self.episode_seed}) at step {self.steps}", **values)

    def _frame_rate_report(self) -> Report:
        now = time.monotonic_ns()
        rate = self.frame_rate.rate(now)
        sim_s_per_frame = self.dt_ns * self.config.steps_per_frame / 1e9
        report = self.frame_rate.report(now).with_values(
            **{"real-time factor": None if rate is None else rate * sim_s_per_frame}
        )
        if not self.running:
            return Report.ok("idle", **report.values)
        if report.level == Level.ERROR:  # a stalled sim is not broken: lockstep waits, a controller may be slow
            waiting = " (waiting for nodes)" if not self.rules.started else " (waiting for a controller)"
            return Report.warn(report.message + (waiting if self._waiting() else ""),
                               **report.values)
        return report

    def _command_report(self) -> Report:
        rules, c = self.rules, self.config
        stale_s = c.command_timeout if c.command_timeout > 0 else None
        report = age_report("command", rules.held_ns, rules.sim_now_ns, warn_s=stale_s)
        if report.level != Level.OK and rules.held_ns is not None:
            report = Report.warn(report.message + ": applying the stop command", **report.values)
        return report.with_values(**{"commands received": self.commands, "topic": self.cmd_topic})

    # -- shutdown -----------------------------------------------------------------------------------------------------

    def summary(self) -> str:
        """One line for the shutdown log."""
        rules = self.rules
        return (
            f"{self.ticks} frames in {self.episode + 1} episode(s); {rules.answered} answered, {rules.timeouts} "
            f"lockstep timeouts, {rules.late_commands} late, {rules.early_commands} early and {rules.bad_commands} bad "
            "commands"
        )

    def close(self) -> None:
        """Log the summary and close the backend (idempotent: run_node calls it, then destroy_node)."""
        sim, self.sim = getattr(self, "sim", None), None
        if sim is None:
            return
        message = self.summary()
        if self.context.ok():
            self.get_logger().info(message)
        else:
            print(f"[{self.get_name()}] {message}", file=sys.stderr, flush=True)
        sim.close()

    def destroy_node(self) -> None:
        self.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Entry point of ``sim_node``."""
    return run_node(SimNode, args)


if __name__ == "__main__":
    sys.exit(main())

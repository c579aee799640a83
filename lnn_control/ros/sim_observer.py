"""An rclpy participant that watches a running simulator set and rebuilds its episodes from what went over ROS.

:class:`SimObserver` subscribes what ``sim_node`` publishes and what it receives (:mod:`lnn_control.nodes.simulator`):

- ``camera/image_raw`` (sensor-data QoS): the frames the controller saw, kept for the episodes in ``keep_frames``;
- ``cmd_vel`` (Twist or TwistStamped): the commands the simulator receives, after the command mux, read as the
  ``schema`` the simulator takes (:mod:`lnn_control.command`: the car's steering and velocity, the drone's ``vx, vy,
  vz, yaw_rate``);
- ``sim/truth``: per-tick ground truth (the named row of :mod:`lnn_control.sim.truth_rows`: the car's speed, reward,
  on track, ...; the drone's 3-D pose, target distance, collided, success, ...), keyed by (episode, step);
- ``sim/episode``: the start and end events, which carry the seed and the episode's own score (and, for a backend
  with a task, its figures: the drone's success, collided, time to target, final distance).

:meth:`SimObserver.results` turns each finished episode into a :class:`~lnn_control.sim.closed_loop.EpisodeResult`,
aligned as ``sim-eval`` aligns its own: index ``j`` holds frame ``j``, the command that answered it (the first one
stamped with that frame's stamp, as the lockstep simulator takes it) and the truth after the tick it drove (``j+1``).
Its series hold each field of the schema (applied and ``cmd_<field>``), ``speed``, ``total_reward``, ``offset`` and
``on_track`` as ``sim-eval``'s do (NaN, or on track, where the backend has no track), and every other truth value as
``truth_<name>`` (the drone's ``truth_target_distance``, ...); its ``outcome`` holds the end event's task figures,
with the scene's ``domain`` and the :func:`outcome_name` first. So :mod:`lnn_control.report.episodes` writes the
same report for a drive over ROS as for an in-process evaluation, for either vehicle.

**Warm-up.** DDS discovery between processes takes a moment (about 1 s on a busy 2-core machine), and a lockstep
simulator steps as soon as its controller answers, so an observer started beside it misses the first steps. Episodes
before ``first_episode`` are a warm-up: once :meth:`SimObserver.ready` (a frame, a command and a truth message
arrived, so all three are matched) or :meth:`SimObserver.warm_up_ended` (a short warm-up ended before that, the
simulator, with ``auto_reset`` off, idles, and each of the three subscriptions reports a matched publisher),
:meth:`SimObserver.request_reset` calls ``sim_node/reset``, which starts the next episode at step 0, seen whole. Only
episodes from ``first_episode`` are reported.

**The end of an episode.** The end event travels on another topic than the truth, so it may overtake the episode's
last truth message; :meth:`SimObserver.wait_for_truth` waits for that message itself.

Callbacks run on the executor's thread; the public methods may be called from another thread.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile
from sensor_msgs.msg import Image
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import Trigger

from lnn_control.command import CAR, ActionSchema
from lnn_control.nodes.simulator import CAMERA_TOPIC, CMD_TOPIC, EPISODE_QOS, EPISODE_TOPIC, TRUTH_TOPIC, truth_values
from lnn_control.ros.msgs import image_array, twist_to_command, twist_type
from lnn_control.ros.qos import COMMAND, SENSOR
from lnn_control.ros.stamps import stamp_to_ns
from lnn_control.sim.closed_loop import EpisodeResult

#: sim_node's ``~/reset`` service, relative to the observer's namespace.
RESET_SERVICE = "sim_node/reset"

#: Sensor-data QoS (best effort, so it matches the camera) with a deep history: a busy machine that holds this
#: process back for a few frames loses none of them (the default depth of 5 lost about 4% here).
CAMERA_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=200, reliability=SENSOR.reliability, durability=SENSOR.durability
)

#: The keys of sim_node's end event every backend sends; any other key is the task's own figure (the drone's).
END_FIELDS = frozenset({"event", "episode", "seed", "reason", "steps", "score", "laps", "tiles_visited",
                        "tiles_total", "lap_progress", "stamp_ns"})
#: Truth values the result's series hold by the names ``sim-eval`` gives them; the rest go in as ``truth_<name>``.
TRUTH_SERIES = {"speed": "speed", "total_reward": "total_reward", "track_offset": "offset", "on_track": "on_track"}
#: Truth values that only index the row.
TRUTH_INDEX = frozenset({"time", "episode", "step"})
#: What :func:`outcome_name` may call an episode.
OUTCOMES = ("success", "collision", "timeout", "out_of_bounds", "lost_target", "tracking_poor", "reset")


def outcome_name(figures: dict[str, Any], reason: str) -> str:
    """One word for how a task's episode ended: ``success``, ``collision``, ``timeout`` (the task's time limit or
    sim_node's ``max_steps``), else the backend's own event (``out_of_bounds``, ...) or sim_node's reason."""
    if figures.get("success"):
        return "success"
    if figures.get("collided"):
        return "collision"
    if reason == "max_steps" or figures.get("ended_by") == "time_limit":
        return "timeout"
    return str(figures.get("ended_by") or reason)


@dataclass
class EpisodeLog:
    """What was seen of one episode so far."""

    index: int
    start: dict[str, Any]
    wall_start: float
    end: dict[str, Any] | None = None
    wall_end: float = 0.0
    truth: dict[int, dict[str, float]] = field(default_factory=dict)  # step -> values

    @property
    def seed(self) -> int:
        return int(self.start["seed"])

    @property
    def tick_ns(self) -> int:
        return int(self.start["dt_ns"]) * int(self.start.get("steps_per_frame", 1))


class SimObserver(Node):
    """Watches one simulator set (see the module docstring); ``schema``: the simulator's command fields;
    ``keep_frames``: episode indices whose frames are kept."""

    def __init__(self, *, stamped: bool, schema: ActionSchema = CAR, first_episode: int = 1,
                 keep_frames: set[int] | frozenset[int] = frozenset({1}), node_name: str = "demo_observer",
                 **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.schema = schema
        self.first_episode = first_episode
        self.keep_frames = set(keep_frames)
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)  # notified on every truth message and episode event
        self.episodes: dict[int, EpisodeLog] = {}
        self.commands: dict[int, tuple[float, ...]] = {}  # stamp -> values in schema order, first arrival wins
        self.frames: dict[int, np.ndarray] = {}  # stamp -> frame (kept episodes only, once their range is known)
        self.counts = {"frames": 0, "commands": 0, "truth": 0, "bad": 0}
        self.first_frame_wall: float | None = None
        self.bad_messages: list[str] = []
        self.links = {  # the counts key of its messages -> subscription
            "frames": self.create_subscription(Image, CAMERA_TOPIC, self._on_frame, CAMERA_QOS),
            "commands": self.create_subscription(twist_type(stamped), CMD_TOPIC, self._on_command, COMMAND),
            "truth": self.create_subscription(Float64MultiArray, TRUTH_TOPIC, self._on_truth, COMMAND),
        }
        self.create_subscription(String, EPISODE_TOPIC, self._on_episode, EPISODE_QOS)
        self.reset_client = self.create_client(Trigger, RESET_SERVICE)

    # -- callbacks ----------------------------------------------------------------------------------------------------

    def _bad(self, text: str) -> None:
        self.counts["bad"] += 1
        if len(self.bad_messages) < 10:
            self.bad_messages.append(text)

    def _on_frame(self, msg: Image) -> None:
        stamp = stamp_to_ns(msg.header.stamp)
        with self._lock:
            self.counts["frames"] += 1
            if self.first_frame_wall is None:
                self.first_frame_wall = time.monotonic()
            if stamp in self.frames or not self._frame_wanted(stamp):
                return
        try:
            frame = np.array(image_array(msg))  # a copy: the message buffer is not ours
        except ValueError as exc:
            self._bad(f"{CAMERA_TOPIC}: {exc}")
            return
        with self._lock:
            self.frames.setdefault(stamp, frame)

    def _frame_wanted(self, stamp: int) -> bool:
        """Keep a frame unless it falls inside an episode whose frames are not kept (unknown yet: keep it)."""
        for log in self.episodes.values():
            begin = int(log.start["stamp_ns"])
            end = int(log.end["stamp_ns"]) if log.end else None
            if stamp >= begin and (end is None or stamp <= end):
                return log.index in self.keep_frames
        return True

    def _on_command(self, msg: Any) -> None:
        command = twist_to_command(msg, self.schema)
        with self._lock:
            self.counts["commands"] += 1
            if command.stamp_ns:
                self.commands.setdefault(command.stamp_ns, command.values)

    def _on_truth(self, msg: Float64MultiArray) -> None:
        try:
            values = truth_values(msg)
        except ValueError as exc:
            self._bad(f"{TRUTH_TOPIC}: {exc}")
            return
        with self._lock:
            self.counts["truth"] += 1
            episode, step = int(values["episode"]), int(values["step"])
            log = self.episodes.get(episode)
            if log is None:  # the start event is on another topic and may come a moment later
                log = self.episodes[episode] = EpisodeLog(episode, {"seed": -1, "stamp_ns": 0, "dt_ns": 0},
                                                          time.monotonic())
            log.truth[step] = values
            self._arrived.notify_all()

    def _on_episode(self, msg: String) -> None:
        try:
            event = json.loads(msg.data)
            kind, episode = event["event"], int(event["episode"])
        except (ValueError, KeyError, TypeError) as exc:
            self._bad(f"{EPISODE_TOPIC}: not a JSON episode event ({exc}): {msg.data[:80]!r}")
            return
        now = time.monotonic()
        with self._lock:
            log = self.episodes.get(episode)
            if kind == "start":
                if log is None:
                    self.episodes[episode] = EpisodeLog(episode, event, now)
                else:
                    log.start = event
            elif kind == "end":
                if log is None:
                    log = self.episodes[episode] = EpisodeLog(episode, {**event, "stamp_ns": 0, "dt_ns": 0}, now)
                log.end, log.wall_end = event, now
                if episode not in self.keep_frames:  # drop what was buffered before the range was known
                    begin, end = int(log.start["stamp_ns"]), int(event["stamp_ns"])
                    for stamp in [s for s in self.frames if begin <= s <= end]:
                        del self.frames[stamp]
            self._arrived.notify_all()

    # -- queries (any thread) -----------------------------------------------------------------------------------------

    def ready(self) -> bool:
        """A frame, a command and a truth message arrived: the three volatile topics are matched."""
        with self._lock:
            return min(self.counts["frames"], self.counts["commands"], self.counts["truth"]) > 0

    def warm_up_ended(self) -> bool:
        """An episode before ``first_episode`` ended (its end event came over ROS: the simulator idles, ``auto_reset``
        off) and each of the camera, command and truth subscriptions is matched with a publisher (it carried a
        message, or its own count of matched publishers says so), though no frame flows."""
        with self._lock:
            ended = any(i < self.first_episode and log.end is not None for i, log in self.episodes.items())
            counts = dict(self.counts)
        return ended and all(counts[name] > 0 or sub.get_publisher_count() > 0 for name, sub in self.links.items())

    def wait_for_truth(self, episode: int, step: int, timeout_s: float) -> bool:
        """Wait until the truth message of ``episode``'s ``step`` arrived; False when ``timeout_s`` passed first."""
        with self._arrived:
            return self._arrived.wait_for(
                lambda: step in getattr(self.episodes.get(episode), "truth", {}), timeout=timeout_s
            )

    def request_reset(self) -> Any:
        """Call ``sim_node/reset`` (end the running episode, start the next); the rclpy future, or None while the
        service is not discovered yet."""
        if not self.reset_client.service_is_ready():
            return None
        return self.reset_client.call_async(Trigger.Request())

    def finished(self) -> list[dict[str, Any]]:
        """The end events of the reported episodes seen so far, in episode order."""
        with self._lock:
            return [log.end for i, log in sorted(self.episodes.items())
                    if log.end is not None and i >= self.first_episode]

    def latest(self) -> dict[str, float] | None:
        """The newest truth values seen (for progress lines)."""
        with self._lock:
            if not self.episodes:
                return None
            log = self.episodes[max(self.episodes)]
            return log.truth[max(log.truth)] if log.truth else None

    def results(self) -> list[EpisodeResult]:
        """One :class:`EpisodeResult` per finished episode, in order."""
        with self._lock:
            logs = [log for i, log in sorted(self.episodes.items()) if log.end is not None and i >= self.first_episode]
            return [self._result(log) for log in logs]

    def missing_frames(self, result: EpisodeResult) -> int:
        """How many of ``result``'s frames were not received (sensor-data QoS is best effort); 0 for a kept episode
        seen whole."""
        with self._lock:
            return sum(int(s) not in self.frames for s in result.series["stamp_ns"])

    def _result(self, log: EpisodeLog) -> EpisodeResult:
        end = log.end
        assert end is not None
        steps = int(end["steps"])
        tick_ns, begin = log.tick_ns, int(log.start["stamp_ns"])
        # frame j's stamp: from the truth published with it, else the episode start plus j ticks
        stamps = np.array(
            [round(log.truth[j]["time"] * 1e9) if j in log.truth else begin + j * tick_ns for j in range(steps)],
            np.int64,
        )
        commands, observed = self._command_series(stamps)
        truth = _truth_series([log.truth.get(j + 1) for j in range(steps)])  # the state each command led to
        on_track = truth.pop("on_track")
        frames = _frames_at(self.frames, stamps) if log.index in self.keep_frames else None
        reason = end.get("reason", "")
        return EpisodeResult(
            seed=int(end.get("seed", log.seed)),
            reward=float(end["score"]),
            laps=int(end.get("laps", 0)),
            tiles_visited=int(end.get("tiles_visited", 0)),
            tiles_total=int(end.get("tiles_total", 0)),
            off_track_s=float((~on_track).sum() * tick_ns * 1e-9),
            steps=steps,
            sim_time_s=steps * tick_ns * 1e-9,
            terminated=reason not in ("max_steps", "reset"),
            truncated=reason == "max_steps",
            observed=int(observed.sum()),
            wall_s=max(log.wall_end - log.wall_start, 1e-9),
            series={
                "t_s": (stamps - begin) * 1e-9,
                **commands,
                **{f"cmd_{name}": commands[name].copy() for name in self.schema.names},
                "speed": truth.pop("speed").astype(np.float32),
                "total_reward": truth.pop("total_reward").astype(np.float32),
                "offset": truth.pop("offset").astype(np.float32),
                "on_track": on_track,
                "observed": observed,
                "stamp_ns": stamps,
                **{f"truth_{name}": values for name, values in truth.items()},
            },
            frames=frames,
            outcome=_outcome(log),
        )

    def _command_series(self, stamps: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Per field of the schema, the command that answered each frame (a command not seen: the one before, the
        stop command at the start), and which were seen."""
        values = np.zeros((len(stamps), len(self.schema)), np.float32)
        observed = np.zeros(len(stamps), bool)
        held = self.schema.stop().values
        for j, stamp in enumerate(stamps):
            command = self.commands.get(int(stamp))
            observed[j] = command is not None
            held = command if command is not None else held
            values[j] = held
        return {name: values[:, i].copy() for i, name in enumerate(self.schema.names)}, observed


def _truth_series(after: list[dict[str, float] | None]) -> dict[str, np.ndarray]:
    """The truth rows (None: not seen) as columns: ``speed``, ``total_reward``, ``offset`` (NaN where not seen or the
    backend has no such value), ``on_track`` (a row not seen: as the one before; no track: on it), and every other
    value by its own name."""
    names = sorted({name for row in after if row is not None for name in row} - TRUTH_INDEX - set(TRUTH_SERIES))

    def column(name: str) -> np.ndarray:
        return np.array([np.nan if t is None else t.get(name, np.nan) for t in after], np.float64)

    out = {ours: column(theirs) for theirs, ours in TRUTH_SERIES.items()}
    on_track_known = out["on_track"]
    for j in range(1, len(after)):  # a truth message not seen: as the step before (counted in the report's meta)
        if np.isnan(on_track_known[j]):
            on_track_known[j] = on_track_known[j - 1]
    out["on_track"] = ~(on_track_known < 0.5)  # unknown at the very start, or no track: on track
    return out | {name: column(name) for name in names}


def _outcome(log: EpisodeLog) -> dict[str, Any]:
    """The task's figures in ``log``'s end event (none for the car): the domain, the :func:`outcome_name`, then the
    event's own (the drone's ``success``, ``collided``, ``time_to_target_s``, ``final_distance_m``, ``ended_by``)."""
    end = log.end or {}
    figures = {k: v for k, v in end.items() if k not in END_FIELDS}
    if not figures:
        return {}
    head = {"domain": str(log.start["domain"])} if "domain" in log.start else {}
    return {**head, "outcome": outcome_name(figures, str(end.get("reason", ""))), **figures}


def _frames_at(frames: dict[int, np.ndarray], stamps: np.ndarray) -> np.ndarray | None:
    """The frames at ``stamps``; a missing one repeats the one before (the first found, at the start); None if none."""
    found = [frames.get(int(s)) for s in stamps]
    first = next((f for f in found if f is not None), None)
    if first is None:
        return None
    out, last = [], first
    for f in found:
        last = f if f is not None else last
        out.append(last)
    return np.stack(out)


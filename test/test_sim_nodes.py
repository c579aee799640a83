"""sim_node and demonstrator_node over real rclpy and Fast DDS, across processes, with the real CarRacing simulator.

- sim_node + drive_node (an untrained, seeded policy saved with checkpoint.save): frames arrive stamped with sim
  time, /clock advances, every command carries the stamp of the frame it answers, and the sim steps in lockstep
  (step k+1 follows a command stamped with step k); an episode ends at max_steps and the next starts with seed + 1
  after the gap.
- With this process answering the frames: NaN and out-of-range commands are replaced or clamped with a warning in the
  node's output while the sim keeps stepping; ``~/reset`` starts the next episode at step 0 with its seed.
- sim_node + demonstrator_node + command_mux_node: the demonstrator drives the sim through the mux as a person
  would (the mux says ``teleop``) and the car makes progress (tiles, reward).
- ``lnn-control up sim-drive --local`` and ``up record-sim --local`` run until this process saw them drive (and the
  recorder acknowledged enough messages), then stop cleanly on SIGINT.

All processes run on one local-only domain (lnn_control.ros.env.local_env through the test harness), one at a time
per test. The lockstep rules themselves are tested in simulated time in test_sim_lockstep.py; here nothing is timed.
Every wait is on what the nodes say (frames, truth, episode events, the recorder's status), never on a sleep or a
window of wall time, and this process's readers keep deep histories so a stall here loses nothing that was
delivered. A tick the sim stepped by its lockstep timeout (a lost frame, a stalled controller) is told apart by the
``timeouts`` counter in its truth, not assumed away.
"""

from __future__ import annotations

import importlib.util
import json
import math
import signal
import threading

import pytest

pytest.importorskip("rclpy")
pytest.importorskip("gymnasium")
pytest.importorskip("Box2D")

from geometry_msgs.msg import TwistStamped  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data  # noqa: E402
from ros_harness import Collector, NodeProcess, RosSession, free_domain_id, publish_until  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Float64MultiArray, String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from lnn_control.nn.checkpoint import save  # noqa: E402
from lnn_control.nn.policy import Policy, PolicyConfig  # noqa: E402
from lnn_control.nodes.simulator import EPISODE_QOS, TRUTH_FIELDS, truth_values  # noqa: E402
from lnn_control.paths import config_file  # noqa: E402
from lnn_control.ros.msgs import twist_msg, twist_to_command  # noqa: E402
from lnn_control.ros.qos import LATCHED  # noqa: E402
from lnn_control.ros.stamps import stamp_to_ns  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.sim, pytest.mark.slow]

DOMAIN = free_domain_id()
DT_NS = 20_000_000
GAP_NS = 2_000_000_000
TELEOP = "teleop"
SEED = 5
MAX_STEPS = 40
WIDTH, HEIGHT = 64, 48
#: This process's readers: deep histories, so nothing delivered is dropped while the test process is busy.
CLOCK_QOS = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
DEEP = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
FRAMES_QOS = QoSProfile(depth=1000, reliability=ReliabilityPolicy.BEST_EFFORT)
DEEP_EPISODES = QoSProfile(depth=100, reliability=EPISODE_QOS.reliability, durability=EPISODE_QOS.durability)
SIM_PARAMS = {
    "stamped": True,
    "lockstep": True,
    "lockstep_timeout": 5.0,  # only a lost message could take this long: a timeout would show as a missed answer
    "seed": SEED,
    "max_steps": MAX_STEPS,
    "frame_width": WIDTH,
    "frame_height": HEIGHT,
    "episode_gap": GAP_NS / 1e9,
}


def _is_event(msg: String, event: str, episode: int) -> bool:
    """Whether an ``sim/episode`` message is ``event`` (start, end) of ``episode``."""
    data = json.loads(msg.data)
    return data["event"] == event and data["episode"] == episode


def _is_sim_time(stamp_ns: int) -> bool:
    """Sim time is a whole number of 20 ms steps (the gap between episodes is 100 steps)."""
    return stamp_ns > 0 and stamp_ns % DT_NS == 0


class Recording:
    """What this process hears from the sim: frames, clock, truth, episode events, commands."""

    def __init__(self, ros: RosSession) -> None:
        self.frames = ros.collect("camera/image_raw", Image, FRAMES_QOS)
        self.clock = ros.collect("/clock", Clock, CLOCK_QOS)
        self.truth = ros.collect("sim/truth", Float64MultiArray, DEEP)
        self.episodes = ros.collect("sim/episode", String, DEEP_EPISODES)
        self.commands = ros.collect("cmd_vel", TwistStamped, DEEP)

    def truth_rows(self) -> list[dict[str, float]]:
        """Truth messages in order, duplicates (re-published ticks) removed."""
        rows, seen = [], set()
        for msg in self.truth.messages:
            row = truth_values(msg)
            key = (row["episode"], row["step"])
            if key not in seen:
                seen.add(key)
                rows.append(row)
        return rows

    def events(self) -> list[dict]:
        return [json.loads(m.data) for m in self.episodes.messages]

    def wait_for_step(self, episode: int, step: int, timeout: float) -> dict[str, float]:
        msg = self.truth.wait_for(
            lambda m: (lambda r: r["episode"] == episode and r["step"] >= step)(truth_values(m)), timeout
        )
        return truth_values(msg)


@pytest.fixture(scope="module")
def ros():
    with RosSession(DOMAIN) as session:
        yield session


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """An untrained policy, seeded, whose velocity output sits around 20 m/s so the car rolls."""
    policy = Policy(PolicyConfig(core="ltc", seed=3, target_mean=(0.0, 20.0), target_std=(0.2, 1.0)))
    stem = tmp_path_factory.mktemp("model") / "untrained"
    save(policy, stem)
    return stem


class TestLockstep:
    """One sim_node for the class: first driven by drive_node, then by this process."""

    @pytest.fixture(scope="class")
    @classmethod
    def sim(cls, tmp_path_factory):
        with NodeProcess(
            "lnn_control.nodes.simulator",
            domain_id=DOMAIN,
            log_dir=tmp_path_factory.mktemp("sim"),
            params=SIM_PARAMS,
        ) as proc:
            proc.wait_for_output(r"episode 0 \(seed 5\) starts", timeout=60)
            yield proc

    def test_drive_node_answers_frames_in_lockstep(self, ros, sim, model, tmp_path):
        rec = Recording(ros)
        # the sim shows its pending tick again every second while nobody drives: once this process heard it, it
        # hears every tick the drive node makes it step
        rec.truth.wait_for(lambda m: True, timeout=30)
        drive = NodeProcess(
            "lnn_control.nodes.drive",
            domain_id=DOMAIN,
            log_dir=tmp_path,
            params={
                "model": str(model),
                "threads": 1,
                "stamped": True,
                "enabled": True,
                "use_sim_time": True,
                "limits.velocity.max": 100.0,
                "nominal_dt": 0.02,
            },
        )
        with drive:
            # one whole episode (max_steps) and some of the next, until this process heard enough commands (its
            # subscription may match the drive node's publisher only after the first answers went out)
            last = rec.wait_for_step(1, 5, timeout=120)
            rec.commands.wait_for_count(20, timeout=60)
            last = truth_values(rec.truth.last())
        assert last["episode"] >= 1

        rows = rec.truth_rows()
        first = [r for r in rows if r["episode"] == 0]
        # the events of every episode heard (another topic: they may arrive after the truth)
        newest = int(rows[-1]["episode"])
        rec.episodes.wait_for(lambda m: _is_event(m, "start", newest), timeout=30)
        events = rec.events()
        starts = [e for e in events if e["event"] == "start"]
        ends = [e for e in events if e["event"] == "end"]
        assert [(e["episode"], e["seed"]) for e in starts[:2]] == [(0, SEED), (1, SEED + 1)]
        assert ends[0]["reason"] == "max_steps" and ends[0]["steps"] == MAX_STEPS
        # sim time: episode 0 starts a gap after zero, the next a gap after the last frame, never backwards
        start_of = {e["episode"]: e["stamp_ns"] for e in starts}
        assert start_of[0] == GAP_NS
        assert ends[0]["stamp_ns"] == GAP_NS + MAX_STEPS * DT_NS
        assert start_of[1] == ends[0]["stamp_ns"] + GAP_NS
        times = [round(r["time"] * 1e9) for r in rows]
        for r, t in zip(rows, times):
            assert t == start_of[int(r["episode"])] + int(r["step"]) * DT_NS, r
        assert times == sorted(times)
        # every tick of episode 0, in order: a tick missing here must be a truth message this process missed
        steps = [int(r["step"]) for r in first]
        assert steps == sorted(steps) and steps[0] == 0
        assert len(set(range(MAX_STEPS + 1)) - set(steps)) <= rec.truth.missed(), steps
        if steps[-1] == MAX_STEPS:
            assert ends[0]["score"] == pytest.approx(first[-1]["total_reward"])
        assert len(starts[0]["track"]["points"]) == first[0]["tiles_total"]
        tick_times = {t0 + k * DT_NS for t0 in start_of.values() for k in range(MAX_STEPS + 1)}

        # frames (best effort): rgb8 at the configured size, stamped with sim time of a tick
        frames = rec.frames.messages
        assert len(frames) >= 2
        for frame in frames:
            assert (frame.encoding, frame.width, frame.height, frame.step) == ("rgb8", WIDTH, HEIGHT, 3 * WIDTH)
            assert len(frame.data) == WIDTH * HEIGHT * 3
            assert stamp_to_ns(frame.header.stamp) in tick_times
        assert len({bytes(f.data) for f in frames}) > 1, "the picture changes"

        # /clock: sim time, never backwards, up to the last tick (reliable: the latest one always arrives)
        rec.clock.wait_for(lambda m: stamp_to_ns(m.clock) >= start_of[1], timeout=30)
        clock = [stamp_to_ns(m.clock) for m in rec.clock.messages]
        assert clock == sorted(clock) and all(_is_sim_time(t) for t in clock)

        # lockstep: tick k+1, unless the sim counted it as a timeout, was stepped by a command answering tick k;
        # checked where this process heard every command the drive node sent (consecutive sequence numbers)
        heard = [(seq, twist_to_command(m).stamp_ns) for seq, m in rec.commands.with_sequences()]
        stamps = {stamp for _, stamp in heard}
        assert stamps <= tick_times, "every command carries the stamp of a frame"
        covered = [(a, b) for (n, a), (m, b) in zip(heard, heard[1:]) if n is not None and m == n + 1]
        checked = 0
        for prev, row in zip(rows, rows[1:]):
            t = round(prev["time"] * 1e9)
            answered = row["step"] == prev["step"] + 1 and row["timeouts"] == prev["timeouts"]
            if answered and any(a <= t <= b for a, b in covered):
                assert t in stamps, f"{row} came without an answer to the tick before"
                checked += 1
        assert checked >= 15
        assert rows[-1]["bad_commands"] == 0
        speeds = [r["speed"] for r in first]
        assert max(speeds) > 1.0, "the network's ~20 m/s target moved the car"

    def test_bad_commands_are_refused_and_reset_restarts(self, ros, sim):
        rec = Recording(ros)
        pub = ros.publisher("cmd_vel", TwistStamped)
        plan = {"answered": 0}
        lock = threading.Lock()

        def answer(frame: Image) -> None:
            with lock:
                n = plan["answered"]
                plan["answered"] += 1
            if n < 5:
                steering, velocity = math.nan, 10.0
            elif n < 10:
                steering, velocity = 7.0, 1e6
            elif n < 15:
                steering, velocity = 0.0, -math.inf
            else:
                steering, velocity = 0.1, 15.0
            pub.publish(twist_msg(steering, velocity, stamped=True, stamp_ns=stamp_to_ns(frame.header.stamp)))

        sub = ros.node.create_subscription(Image, "camera/image_raw", answer, qos_profile_sensor_data)
        try:
            self._bad_commands_then_reset(ros, sim, rec)
        finally:
            ros.node.destroy_subscription(sub)
            ros.node.destroy_publisher(pub)

    def _bad_commands_then_reset(self, ros, sim, rec):
        rec.truth.wait_for(lambda m: truth_values(m)["bad_commands"] >= 15, timeout=60)
        mark = sim.wait_for_output(r"non-finite command", timeout=30)
        sim.wait_for_output(r"out of range.*clamped", timeout=30)
        assert "/cmd_vel" in sim.output()[max(0, mark.start() - 200) : mark.end()]
        # the sim keeps stepping on good commands after the bad ones
        episode = int(truth_values(rec.truth.last())["episode"])
        before = truth_values(rec.truth.last())
        rec.truth.wait_for(
            lambda m: truth_values(m)["episode"] != before["episode"] or truth_values(m)["step"] >= before["step"] + 5,
            timeout=60,
        )
        assert sim.alive

        response = ros.call("/sim_node/reset", Trigger)
        assert response.success
        ended = rec.episodes.wait_for(lambda m: json.loads(m.data)["event"] == "end"
                                      and json.loads(m.data)["reason"] == "reset", timeout=30)
        new_episode = json.loads(ended.data)["episode"] + 1
        assert new_episode >= episode + 1
        assert f"seed {SEED + new_episode}" in response.message
        started = json.loads(
            rec.episodes.wait_for(
                lambda m: json.loads(m.data)["event"] == "start" and json.loads(m.data)["episode"] == new_episode, 30
            ).data
        )
        assert started["seed"] == SEED + new_episode
        assert started["stamp_ns"] == json.loads(ended.data)["stamp_ns"] + GAP_NS
        row = truth_values(rec.truth.wait_for(lambda m: truth_values(m)["episode"] == new_episode, timeout=30))
        # the first tick heard of the new episode is its step 0, unless this process missed truth messages
        assert row["step"] <= rec.truth.missed()
        assert round(row["time"] * 1e9) == started["stamp_ns"] + int(row["step"]) * DT_NS
        assert row["step"] > 0 or row["total_reward"] == 0.0
        rec.wait_for_step(new_episode, 3, timeout=60)  # and it steps on


def test_demonstrator_drives_the_sim_through_the_mux(ros, tmp_path):
    rec = Recording(ros)
    source = ros.collect("mux/active_source", String, LATCHED)
    labels = ros.collect("demonstrator_node/label", TwistStamped)
    teleop = ros.collect("teleop/cmd_vel", TwistStamped)
    sim_time = {"use_sim_time": True, "stamped": True}
    with (
        NodeProcess("lnn_control.nodes.simulator", domain_id=DOMAIN, log_dir=tmp_path,
                    params={"stamped": True, "seed": 1, "lockstep_timeout": 1.0}) as sim,
        NodeProcess("lnn_control.nodes.mux", domain_id=DOMAIN, log_dir=tmp_path,
                    params={**sim_time, "autonomy_on_start": True, "idle_tail": -1.0}) as mux,  # as config/sim.yaml
        NodeProcess("lnn_control.nodes.demonstrator", domain_id=DOMAIN, log_dir=tmp_path,
                    params={**sim_time, "steering_noise": 0.05, "seed": 2}) as demo,
    ):
        row = rec.wait_for_step(0, 200, timeout=150)

        def stamps(collector: Collector) -> set[int]:
            return {twist_to_command(m).stamp_ns for m in collector.messages}

        # on a loaded machine this process may match the publishers late or fall behind: let the sim drive on
        ros.wait_for(lambda: len(stamps(teleop) & stamps(labels)) >= 100, timeout=120,
                     what="100 frames with both the executed command and its label")
        source.wait_for(lambda m: m.data == TELEOP, timeout=30)  # the mux says the person drives
        assert sim.alive and mux.alive and demo.alive
    # progress: CarRacing gives ~3.7 per tile; a car standing still loses 0.1 per step
    assert row["tiles_visited"] >= 30, row
    assert row["total_reward"] >= 70.0, row
    assert row["speed"] > 10.0
    # the demonstrator's commands answer the frames (sim-time stamps), labels beside them
    # every stamp is the sim time of a tick of episode 0 (this process may have missed the first truth messages)
    executed = {c.stamp_ns: c for c in map(twist_to_command, teleop.messages)}
    clean = {c.stamp_ns: c for c in map(twist_to_command, labels.messages)}
    for stamp in {*executed, *clean}:
        assert stamp >= GAP_NS and (stamp - GAP_NS) % DT_NS == 0, stamp
    both = set(executed) & set(clean)  # the processes stop while the last ones are in flight
    assert len(both) >= 100
    noise = [executed[t].steering - clean[t].steering for t in both]
    assert max(map(abs, noise)) > 0.0, "steering noise goes into the executed command, not the label"
    assert all(executed[t].velocity == clean[t].velocity for t in both)


def test_free_running_steps_on_its_own(ros, tmp_path):
    """lockstep: false: ticks at `rate` with nobody publishing; sim time advances one dt per tick; the car stays put
    (no command: straight ahead at zero speed)."""
    rec = Recording(ros)
    params = {"lockstep": False, "rate": 100.0, "seed": 2, "steps_per_frame": 2}
    with NodeProcess("lnn_control.nodes.simulator", domain_id=DOMAIN, log_dir=tmp_path, params=params) as sim:
        rec.wait_for_step(0, 30, timeout=60)
        assert sim.alive
    rows = [r for r in rec.truth_rows() if r["episode"] == 0]
    t0 = round(rows[0]["time"] * 1e9) - int(rows[0]["step"]) * 2 * DT_NS
    assert t0 == GAP_NS
    for r in rows:
        assert round(r["time"] * 1e9) == t0 + int(r["step"]) * 2 * DT_NS  # two 20 ms steps per tick
    assert max(abs(r["speed"]) for r in rows) < 0.5
    assert rows[-1]["timeouts"] == 0 and rows[-1]["bad_commands"] == 0


def test_the_run_waits_until_the_recorder_received_what_it_must_record_from_the_first_frame(ros, tmp_path):
    """wait_for_recorded: nobody publishes lnn/cmd_vel yet, so no graph shows a publisher the recorder could still
    have to match (the gap that once lost all 41 commands of a DAgger episode). The free-running sim holds its first
    frame, saying what it waits for, until the recorder received a command (this process publishes them); then it
    ticks, and the bag has the command."""
    from lnn_control.data.bags import read_records
    from lnn_control.ros.qos import KEPT

    rec = Recording(ros)
    recorder = {"output_dir": str(tmp_path / "bags"), "status_period": 0.2, "min_free_mb": 1, "autostart": True,
                "topics": ["sim/truth std_msgs/msg/Float64MultiArray reliable",
                           "lnn/cmd_vel geometry_msgs/msg/TwistStamped latched"]}
    params = {"lockstep": False, "rate": 20.0, "seed": 3, "wait_for_recorders": ["recorder_node"],
              "wait_for_recorded": ["lnn/cmd_vel"]}
    with NodeProcess("lnn_control.nodes.recorder", domain_id=DOMAIN, log_dir=tmp_path, name="recorder_node",
                     params=recorder) as recorder_node:
        with NodeProcess("lnn_control.nodes.simulator", domain_id=DOMAIN, log_dir=tmp_path, params=params) as sim:
            sim.wait_for_output(r"waiting for recorder_node: /lnn/cmd_vel \(nothing received yet\)", timeout=60)
            assert {truth_values(m)["step"] for m in rec.truth.messages} <= {0.0}, "it ticked before the gate"
            commands = ros.publisher("lnn/cmd_vel", TwistStamped, KEPT)
            publish_until(commands, TwistStamped, rec.truth, lambda m: truth_values(m)["step"] >= 3, timeout=60)
        assert recorder_node.stop() == 0, recorder_node.tail()
    (bag,) = [p.parent for p in (tmp_path / "bags").rglob("metadata.yaml")]
    assert list(read_records(bag, ["/lnn/cmd_vel"])), "the command that opened the gate is not in the bag"


def test_a_second_clock_is_named(ros, tmp_path):
    """Another /clock publisher on the domain (a second simulator) gets a warning that says so."""
    params = {"lockstep": False, "rate": 20.0, "seed": 3}
    with NodeProcess("lnn_control.nodes.simulator", domain_id=DOMAIN, log_dir=tmp_path, params=params) as sim:
        sim.wait_for_output("starts at sim time", timeout=60)
        assert "publishers on /clock" not in sim.output()
        other = ros.publisher("/clock", Clock)
        try:
            sim.wait_for_output(r"2 publishers on /clock .*another simulator", timeout=30)
        finally:
            ros.node.destroy_publisher(other)


def _up(args: list[str], tmp_path) -> NodeProcess:
    """``lnn-control up ARGS --local`` as a process (until it is stopped)."""
    return NodeProcess(
        "lnn_control.cli", domain_id=DOMAIN, log_dir=tmp_path, args=["up", *args, "--local"], cwd=tmp_path,
        stop_timeout=60.0,
    )


def _stop_cleanly(up: NodeProcess) -> str:
    """SIGINT (Ctrl-C), then its whole output; it must exit 0 without a traceback."""
    assert up.stop(signal.SIGINT) == 0, up.tail(80)
    out = up.output()
    assert "Traceback" not in out, out
    return out


def _statuses(collector: Collector) -> list[dict]:
    return [json.loads(m.data) for m in collector.messages]


def test_up_sim_drive_runs_and_stops_on_sigint(ros, model, tmp_path):
    rec = Recording(ros)
    source = ros.collect("mux/active_source", String, LATCHED)
    with _up(["sim-drive", "--set", f"drive_node.model={model}"], tmp_path) as up:
        up.wait_until(lambda: sum(r["episode"] == 0 for r in rec.truth_rows()) >= 10, 120, "10 ticks of episode 0")
        up.wait_until(lambda: "policy" in [m.data for m in source.messages], 60, "the mux saying the policy drives")
        _stop_cleanly(up)


def test_up_record_sim_runs_and_stops_on_sigint(ros, tmp_path):
    if not config_file("record.yaml").is_file():
        pytest.skip("config/record.yaml is not there yet (the recorder's config); record-sim reads it")
    args = ["record-sim"]
    recorder = importlib.util.find_spec("lnn_control.nodes.recorder") is not None
    bags = tmp_path / "bags"
    args += ["--set", f"recorder_node.output_dir={bags}"] if recorder else ["--without", "recorder_node"]
    rec = Recording(ros)
    source = ros.collect("mux/active_source", String, LATCHED)
    status = ros.collect("recorder_node/status", String, DEEP)
    wanted = {"/camera/image_raw": 10, "/teleop/cmd_vel": 10, "/demonstrator_node/label": 10, "/sim/episode": 1}

    def acknowledged() -> bool:
        """The recorder's own count of what it accepted into the bag (it never loses that)."""
        latest = _statuses(status)[-1:] or [{"topics": {}}]
        topics = latest[0]["topics"]
        return all(topics.get(topic, {}).get("received", 0) >= n for topic, n in wanted.items())

    with _up(args, tmp_path) as up:
        up.wait_until(lambda: any(r["episode"] == 0 and r["tiles_visited"] >= 3 for r in rec.truth_rows()), 120,
                      "the demonstrator visiting 3 tiles")
        up.wait_until(lambda: TELEOP in [m.data for m in source.messages], 60, "the mux saying teleop drives")
        if recorder:
            up.wait_until(acknowledged, 120, f"the recorder acknowledging {wanted}")
        _stop_cleanly(up)
    if recorder:
        from rosbags.rosbag2 import Reader

        (bag,) = [p.parent for p in bags.rglob("metadata.yaml")]
        with Reader(bag) as reader:
            counts = {c.topic: c.msgcount for c in reader.connections}
            types = {c.topic: c.msgtype for c in reader.connections}
        assert all(counts[topic] >= n for topic, n in wanted.items()), counts
        assert types["/teleop/cmd_vel"] == "geometry_msgs/msg/TwistStamped"


def test_truth_layout_round_trips():
    from lnn_control.nodes.simulator import truth_msg

    values = {name: float(i) for i, name in enumerate(TRUTH_FIELDS)}
    msg = truth_msg(values)
    assert msg.layout.dim[0].label == ",".join(TRUTH_FIELDS)
    assert truth_values(msg) == values
    msg.layout.dim[0].label = "speed"
    with pytest.raises(ValueError, match="layout"):
        truth_values(msg)


def test_sim_yaml_names_only_declared_parameters():
    """config/sim.yaml: sim_node and demonstrator_node list every parameter; the overrides name real ones."""
    from lnn_control.bringup import WILDCARD, read_params
    from lnn_control.nodes.demonstrator import DemonstratorConfig
    from lnn_control.nodes.driver_params import NODE_PARAMETERS, parameter_specs
    from lnn_control.nodes.joy_teleop import JoyTeleopConfig
    from lnn_control.nodes.mux import MuxConfig
    from lnn_control.nodes.simulator import SimNodeConfig
    from lnn_control.nodes.teleop_keyboard import KeyTeleopConfig
    from lnn_control.ros.node_util import check_value, describe

    params = read_params(config_file("sim.yaml"))
    shared = params.pop(WILDCARD, {})  # what every node of the sim sets is given
    declared = {
        "sim_node": describe(SimNodeConfig),
        "demonstrator_node": describe(DemonstratorConfig),
        "command_mux_node": describe(MuxConfig),
        "teleop_keyboard_node": describe(KeyTeleopConfig),
        "joy_teleop_node": describe(JoyTeleopConfig),
        **{node: parameter_specs(node) for node in NODE_PARAMETERS},
    }
    from lnn_control.data.episode_bag import parse_topics
    from lnn_control.nodes.recorder import RecorderConfig

    declared["recorder_node"] = describe(RecorderConfig)
    for node in ("sim_node", "demonstrator_node"):
        assert set(params[node]) | set(shared) == {s["name"] for s in declared[node]}, node
    assert set(params) <= set(declared), "sim.yaml names a node that does not exist"
    for node, values in params.items():
        specs = {s["name"]: s for s in declared[node]}
        for name, value in values.items():
            assert name in specs, f"sim.yaml: {node}.{name} is not a parameter of {node}"
            check_value(name, specs[name]["kind"], value, specs[name])  # type and range
    # one message type on every command topic of the sim sets: the shared stamped, which every one of them declares
    commands = ("sim_node", "demonstrator_node", "drive_node", "policy_node", "command_mux_node",
                "teleop_keyboard_node", "joy_teleop_node")
    assert shared["stamped"] is True
    assert all("stamped" in {s["name"] for s in declared[n]} for n in commands)
    assert all(params.get(n, {}).get("stamped", True) is True for n in commands), "no node overrides it"
    recorder = params["recorder_node"]
    recorded = {entry.topic: entry.msgtype for entry in parse_topics(recorder["topics"])[0]}
    assert recorded["teleop/cmd_vel"] == "geometry_msgs/msg/TwistStamped"
    assert params["sim_node"]["episode_gap"] > params["drive_node"]["reset_gap"]
    assert params["demonstrator_node"]["steer_max_rad"] == params["sim_node"]["steer_max_rad"]

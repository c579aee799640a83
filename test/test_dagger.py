"""DAgger with interventions over real rclpy and Fast DDS, across processes, with the real CarRacing simulator.

- sim_node + command_mux_node + demonstrator_node (``intervene: true``), and this process as the policy: a constant
  command on ``lnn/cmd_vel`` (steering left, 20 m/s) that leaves the road. The demonstrator labels every state on
  ``demonstrator_node/label``, publishes on ``teleop/cmd_vel`` only from a state far off the centreline until one
  back near it (hysteresis, at least ``min_takeover_s``), the clean label without the configured noise and with the
  speed capped at ``intervene_speed``; the mux
  hands the car to it and back (``mux/active_source``), and the sim executes its commands while it drives.
- ``lnn-control up dagger-sim --local`` runs for a few seconds and exits cleanly, writing a bag with the label on
  every frame and the policy's own command beside it.

Distances are sim_node's own ``track_offset`` (sim/truth), not the demonstrator's, and headings come from the
recorded pose against the track of the ``start`` event. No timing assertions; what two topics say is compared only
up to the last stamp both have (a stream's tail can be cut off at shutdown).
"""

from __future__ import annotations

import json
import math
import re

import pytest

pytest.importorskip("rclpy")
pytest.importorskip("gymnasium")
pytest.importorskip("Box2D")

from geometry_msgs.msg import PoseStamped, TwistStamped  # noqa: E402
from ros_harness import NodeProcess, RosSession, free_domain_id  # noqa: E402
from std_msgs.msg import Float64MultiArray, String  # noqa: E402

from lnn_control.nn.checkpoint import save  # noqa: E402
from lnn_control.nn.policy import Policy, PolicyConfig  # noqa: E402
from lnn_control.nodes.demonstrator import track_from_event  # noqa: E402
from lnn_control.nodes.simulator import EPISODE_QOS, truth_values  # noqa: E402
from lnn_control.ros.msgs import twist_msg, twist_to_command  # noqa: E402
from lnn_control.ros.qos import LATCHED  # noqa: E402
from lnn_control.ros.stamps import stamp_to_ns  # noqa: E402
from lnn_control.sim.track import TrackLocator  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.sim, pytest.mark.slow]

DOMAIN = free_domain_id()
DT_NS = 20_000_000
TAKEOVER = {"intervene_offset": 5.5, "intervene_heading": 0.8, "release_offset": 2.0, "release_heading": 0.3,
            "min_takeover_s": 0.5, "intervene_speed": 30.0}
POLICY = (0.35, 20.0)  # steering (left), m/s: off the road within about a second


@pytest.fixture(scope="module")
def ros():
    with RosSession(DOMAIN) as session:
        yield session


def _runs(stamps: list[int]) -> list[list[int]]:
    """Maximal runs of consecutive frame stamps (20 ms apart)."""
    runs: list[list[int]] = []
    for t in sorted(stamps):
        if runs and t - runs[-1][-1] == DT_NS:
            runs[-1].append(t)
        else:
            runs.append([t])
    return runs


def test_demonstrator_takes_over_off_the_road_and_hands_back(ros, tmp_path):
    truth = ros.collect("sim/truth", Float64MultiArray)
    poses = ros.collect("sim/pose", PoseStamped)
    episodes = ros.collect("sim/episode", String, EPISODE_QOS)
    # teleop before the label: a participant announces its readers in the order they were made, so once a label
    # arrives the demonstrator has matched the teleop reader too (silent until a takeover, it cannot show that)
    teleop = ros.collect("teleop/cmd_vel", TwistStamped)
    labels = ros.collect("demonstrator_node/label", TwistStamped)
    executed = ros.collect("cmd_vel", TwistStamped)
    source = ros.collect("mux/active_source", String, LATCHED)
    policy = ros.publisher("lnn/cmd_vel", TwistStamped)
    watched = (truth, poses, labels, executed, source)
    live: list[int] = []  # the state at which every topic above had reached this process (it misses nothing after)

    def answer(msg: PoseStamped) -> None:
        """The "policy": a constant command answering every state, leaving the road. Until everything is watched
        it holds the car still on the road (no takeover can start unseen; a reliable reader matched late misses
        what came before)."""
        if not live and all(len(c) for c in watched):
            live.append(stamp_to_ns(msg.header.stamp))
        command = POLICY if live else (0.0, 0.0)
        policy.publish(twist_msg(*command, stamped=True, stamp_ns=stamp_to_ns(msg.header.stamp)))

    sub = ros.node.create_subscription(PoseStamped, "sim/pose", answer, 10)
    sim_time = {"use_sim_time": True, "stamped": True}
    try:
        with (
            NodeProcess("lnn_control.nodes.simulator", domain_id=DOMAIN, log_dir=tmp_path,
                        params={"stamped": True, "seed": 3, "max_steps": 2000, "frame_width": 48,
                                "frame_height": 48}) as sim,
            NodeProcess("lnn_control.nodes.mux", domain_id=DOMAIN, log_dir=tmp_path,
                        params={**sim_time, "input.teleop.timeout": 0.03, "autonomy_on_start": True,
                                "idle_tail": -1.0}) as mux,
            NodeProcess("lnn_control.nodes.demonstrator", domain_id=DOMAIN, log_dir=tmp_path,
                        params={**sim_time, **TAKEOVER, "intervene": True, "steering_noise": 0.2,
                                "drift_rate_hz": 1.0}) as demo,
        ):
            # until two takeovers have ended (the policy drove again after each)
            truth.wait_for(lambda m: len(_runs([twist_to_command(t).stamp_ns for t in teleop.messages])) >= 3,
                           timeout=150)
            assert sim.alive and mux.alive and demo.alive, sim.tail() + mux.tail() + demo.tail()
    finally:
        ros.node.destroy_subscription(sub)
        ros.node.destroy_publisher(policy)
    assert "takeover 1 at" in demo.output(), demo.tail()
    assert "takeovers" in demo.output(), demo.tail()  # the count at shutdown

    start = next(json.loads(m.data) for m in episodes.messages if json.loads(m.data)["event"] == "start")
    locator = TrackLocator(track_from_event(start))
    offset = {}  # stamp -> |distance from the centreline|, sim_node's own
    for m in truth.messages:
        row = truth_values(m)
        if row["episode"] == 0:
            offset[round(row["time"] * 1e9)] = abs(row["track_offset"])
    heading_error = {}
    for m in poses.messages:
        q, p = m.pose.orientation, m.pose.position
        point = locator.locate(p.x, p.y)
        heading = 2.0 * math.atan2(q.z, q.w)
        heading_error[stamp_to_ns(m.header.stamp)] = abs(
            math.remainder(heading - locator.track.tangent_angle[point.index], math.tau)
        )
    label = {c.stamp_ns: c for c in map(twist_to_command, labels.messages)}
    driven = {c.stamp_ns: c for c in map(twist_to_command, teleop.messages)}
    sent = {}  # what the mux sent to the sim, by the stamp of the state it answers (first one)
    for c in map(twist_to_command, executed.messages):
        sent.setdefault(c.stamp_ns, c)

    # a label for every state from the demonstrator's first to its last (the first may predate its subscriptions)
    states = sorted(t for t in offset if min(label) <= t <= max(label))
    assert len(states) >= 100
    assert [t for t in states if t not in label] == [], "a state without a label"
    # every state the demonstrator drove has its label (the last ones may be cut off by the shutdown: another topic)
    assert {t for t in driven if t <= max(label)} <= set(label)
    assert min(driven) > live[0], "a takeover before everything was watched"

    # teleop only in takeovers: each run starts far off (or facing away) and the state after it is back near
    runs = _runs(list(driven))
    assert len(runs) >= 3, runs
    for run in runs:
        first = run[0]
        assert offset[first] > TAKEOVER["intervene_offset"] - 0.1 or heading_error[first] > 0.8 - 0.02, (
            f"takeover at {first}: {offset[first]:.2f} m, {heading_error[first]:.2f} rad"
        )
    for run in runs[:-1]:  # the ones that ended
        assert len(run) * DT_NS >= TAKEOVER["min_takeover_s"] * 1e9
        after = run[-1] + DT_NS
        assert after in label and after not in driven
        assert offset[after] <= TAKEOVER["release_offset"] + 0.1, f"handed back {offset[after]:.2f} m off"
        assert heading_error[after] <= TAKEOVER["release_heading"] + 0.02
    # never far off without a takeover: every state beyond the threshold was driven by the demonstrator
    far = [t for t in states if offset[t] > TAKEOVER["intervene_offset"] + 0.1]
    assert far and set(far) <= set(driven), "far off the road while the policy drove"
    policy_states = [t for t in states if t not in driven]
    assert len(policy_states) >= 50

    # while it drives it sends the clean label (no noise although steering_noise is set) at most at intervene_speed,
    # and the sim gets it: the mux forwards it, not the policy's answer to the same state (except, by a race, at a
    # run's first state)
    for t, c in driven.items():
        if t <= max(label):  # both topics have it
            assert (c.steering, c.velocity) == (label[t].steering, min(label[t].velocity, TAKEOVER["intervene_speed"]))
    inside = [t for run in runs for t in run[1:] if t in sent]
    assert len(inside) >= len(driven) // 2
    for t in inside:
        assert (sent[t].steering, sent[t].velocity) == (driven[t].steering, driven[t].velocity), t
    # ... and otherwise the policy's command goes to the sim (from the first takeover on: the mux is past start-up)
    steered = [t for t in policy_states if t in sent and t > runs[0][0]]
    assert len(steered) >= 30
    assert all((sent[t].steering, sent[t].velocity) == POLICY for t in steered)
    assert any(abs(label[t].steering - POLICY[0]) > 0.2 for t in policy_states), "labels are the expert's, not copies"
    said = [m.data for m in source.messages]
    assert "teleop" in said and "policy" in said[said.index("teleop"):], said


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """An untrained policy, seeded, whose velocity output sits around 20 m/s so the car rolls."""
    policy = Policy(PolicyConfig(core="ltc", seed=3, target_mean=(0.0, 20.0), target_std=(0.2, 1.0)))
    stem = tmp_path_factory.mktemp("model") / "untrained"
    save(policy, stem)
    return stem


def test_up_dagger_sim_runs_and_records_labels(ros, model, tmp_path):
    """One process per node, so each starts when it is ready: sim_node waits for the slow ones (drive_node loads its
    model for seconds), then steps every frame on the policy's answer and the demonstrator's label (lockstep_with)."""
    from rosbags.rosbag2 import Reader

    from lnn_control.bringup import read_params
    from lnn_control.data.bags import read_records
    from lnn_control.paths import config_file

    cap = read_params(config_file("sim.yaml"))["demonstrator_node"]["intervene_speed"]

    bags = tmp_path / "bags"
    args = ["up", "dagger-sim", "--local", "--processes", "--duration", "600", "--set", f"drive_node.model={model}",
            "--set", "sim_node.episodes=1", "--set", "sim_node.max_steps=40",
            "--set", f"recorder_node.output_dir={bags}"]
    with NodeProcess("lnn_control.cli", domain_id=DOMAIN, log_dir=tmp_path, args=args, cwd=tmp_path) as up:
        up.wait_for_output(r"episode\(s\) done", timeout=180)
        assert up.stop(timeout=60) == 0, up.tail()
        out = up.output()
    assert "Traceback" not in out, out
    assert "intervention mode" in out and "labels; drove" in out, out

    (bag,) = [p.parent for p in bags.rglob("metadata.yaml")]
    with Reader(bag) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
    assert counts["/camera/image_raw"] >= 41, counts
    frames = {r.header_ns for r in read_records(bag, ["/sim/pose"])}
    labels = {r.header_ns: r.msg for r in read_records(bag, ["/demonstrator_node/label"])}
    # every frame labelled from the episode's first (nobody missed the start, nothing fell behind), up to the last
    # label (the one of the final frame may be in flight at the end)
    assert len(frames) == 41 and len(labels) >= 40 and min(frames) in labels, sorted(frames - set(labels))
    assert {f for f in frames if f <= max(labels)} <= set(labels), sorted(frames - set(labels))
    # the recorder has what the policy asked for from frame 0 on (it received the answer to the held frame 0 before
    # the start, wait_for_recorded: twice, matching only what the graph showed, it recorded none of the 41)
    asked = {r.header_ns for r in read_records(bag, ["/lnn/cmd_vel"])}
    assert min(frames) in asked and len(asked & frames) >= 40, sorted(frames - asked)
    # and the policy saw them all, frame 0 included (it would have missed those stepped while it loaded its model)
    received = int(re.search(r"drive_node\]: /camera/image_raw: (\d+) frames received", out).group(1))
    assert received >= len(frames), out
    for r in read_records(bag, ["/teleop/cmd_vel"]):  # interventions, if any, are the labels of their frames
        if r.header_ns > max(labels):
            continue  # its label was published after it, in flight at the end
        label = labels[r.header_ns].twist
        assert (r.msg.twist.angular.z, r.msg.twist.linear.x) == (label.angular.z, min(label.linear.x, cap))
    sources = [r.msg.data for r in read_records(bag, ["/mux/active_source"])]
    assert "policy" in sources, sources

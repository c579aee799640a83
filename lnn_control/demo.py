"""``lnn-control demo``: the shipped liquid policies drive the CarRacing simulator and fly the drone through ROS
(what ``make demo`` runs).

**The car.**

1. start ``lnn-control up sim-drive --local`` (sim_node -> drive_node with ``models/ltc_ncp_carracing`` -> command
   mux -> sim_node, over Fast DDS, lockstep, on sim time) for ``--episodes`` episodes on seeds from ``--seed`` (1000:
   the model trained on seeds 100-103 and validated on 200, so these tracks are new to it);
2. watch it from this process with an rclpy observer (:mod:`lnn_control.ros.sim_observer`) on the same private DDS
   domain: the camera, the commands the simulator receives, its ground truth and episode events;
3. stop ``up`` when the episodes are done (the last episode's end event and its last truth message arrived), replay
   the first episode's frames through :mod:`lnn_control.replay` (``Driver.observe``, the drive node's path) for the
   neuron activity, compare its commands with those the simulator received
   (:func:`lnn_control.compare.compare_streams`), and write the report folder (``--out``, default ``reports/demo``)
   with :mod:`lnn_control.report.episodes`, as ``sim-eval`` does: ``episodes.csv``, ``summary.json``, a GIF with the
   steering overlay, ``timeseries.png`` and ``activity.png``; ``up.log`` holds the nodes' output.

**The drone** (unless ``--no-drone``): the same three steps with ``lnn-control up drone-sim-drive --local``
(``models/ltc_ncp_drone``, an LTC-NCP trained on ``summer`` flights only, with one DAgger round), one
``fly-to-target`` flight per domain of ``--drone-domains`` (default ``summer``, its training looks, and ``winter``,
a shift it never saw: snow on the ground and the crowns), each its own ``up`` (the domain is sim_node's), all on
seed ``--drone-seed`` (1000: the same forest in each domain), the observer reading the commands as the model's
action (``vx, vy, vz, yaw_rate``). The report goes to ``OUT/drone``: the episodes' outcome (success, collision or
timeout), time to target and final distance in ``episodes.csv`` and ``summary.json``, a GIF of the first flight
with the commands overlaid, ``timeseries.png``, ``activity.png`` and ``up_<domain>.log``.

``lnn-control demo --offline`` runs the earlier offline pipeline instead: import the Donkeycar tub (or record the
demonstrator), train a small LTC-NCP for ``--minutes``, replay the held-out frames, report under ``--out``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lnn_control import processes
from lnn_control.command import CAR, ActionSchema, schema_from
from lnn_control.paths import SOURCE_ROOT, ModelNotFoundError, config_file, resolve_model

DEFAULT_MODEL = "ltc_ncp_carracing"
#: The shipped model trained on seeds 100-103 and was validated on 200: the demo drives from here on.
FIRST_UNSEEN_SEED = 1000
SET = "sim-drive"
#: The shipped drone model (trained on summer flights of seeds 100-199 and 300-399, validated on 200-239).
DRONE_MODEL = "ltc_ncp_drone"
DRONE_SET = "drone-sim-drive"
#: Its training domain, and a shifted one it never saw (models/ltc_ncp_drone.md: 94% and 100% success).
DRONE_DOMAINS = ("summer", "winter")
#: sim_node's ``max_steps`` for a flight: more than the task's time limit (fly-to-target: 30 s = 429 frames), which
#: ends it first.
DRONE_MAX_STEPS = 1000


def say(text: str) -> None:
    """One progress line."""
    print(f"[demo] {text}", flush=True)


class DemoError(RuntimeError):
    """What stopped the demo; the message names the part that failed."""


def run_demo(options: DemoOptions) -> int:
    """The demo (the drive, or the offline pipeline with ``offline``); the exit status (1: DemoError, printed;
    130: interrupted). SIGTERM stops it as Ctrl-C does."""
    if options.offline:
        return run_offline(options)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return run_drive(options)
    except DemoError as exc:
        print(f"[demo] error: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("[demo] interrupted: lnn-control up stopped", file=sys.stderr, flush=True)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(*_: Any) -> None:
    raise KeyboardInterrupt


# -- the drive through ROS ------------------------------------------------------------------------------------------


def model_stem(name: str | None, default: str = DEFAULT_MODEL) -> Path:
    """The absolute checkpoint stem of ``name`` (default: the shipped ``default``), as
    :func:`lnn_control.paths.resolve_model` reads it; DemoError naming what is missing."""
    try:
        return resolve_model(name or default).resolve()
    except ModelNotFoundError as exc:
        raise DemoError(str(exc)) from exc


def model_schema(model: Path) -> ActionSchema:
    """The action the checkpoint ``model`` outputs (its JSON's ``config.action``): the fields drive_node sends."""
    path = model.with_name(model.name + ".json")
    try:
        return schema_from(json.loads(path.read_text(encoding="utf-8"))["config"].get("action"))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DemoError(f"{path}: no action schema ({exc})") from exc


@dataclass(frozen=True)
class Drive:
    """One ``lnn-control up NODE_SET --local`` run the demo starts and watches: a warm-up episode on seed
    ``seed - 1`` (cut short once the observer is connected, see :mod:`lnn_control.ros.sim_observer`), then
    ``episodes`` from ``seed``, each started by the demo through ``sim_node/reset`` (``auto_reset`` off)."""

    node_set: str
    model: Path
    seed: int
    episodes: int
    max_steps: int
    log_path: Path
    settings: tuple[str, ...] = ()
    """More ``NODE.PARAM=VALUE`` settings (``--set``; the drone's domain)."""
    label: str = ""
    """What progress lines call it (``summer``)."""

    def up_settings(self) -> list[str]:
        """The ``NODE.PARAM=VALUE`` settings of ``lnn-control up``."""
        return [f"drive_node.model={self.model}", f"sim_node.seed={self.seed - 1}",
                f"sim_node.episodes={self.episodes + 1}", f"sim_node.max_steps={self.max_steps}",
                "sim_node.auto_reset=false", *self.settings]

    def up_arguments(self, processes_: bool) -> list[str]:
        """The ``lnn-control up`` command line (after ``up``)."""
        argv = [self.node_set, "--local"]
        for item in self.up_settings():
            argv += ["--set", item]
        return argv + (["--processes"] if processes_ else [])


@dataclass
class Watched:
    """What the observer saw of one :class:`Drive`."""

    drive: Drive
    how: str
    """The ``lnn-control up`` command line."""
    sim: dict[str, Any]
    """sim_node's parameters in that run."""
    ros_domain_id: int
    results: list
    missing: list[int | None]
    counts: dict[str, int]
    wall_s: float


def car_drive(options: DemoOptions) -> Drive:
    """The car's run: ``up sim-drive`` with the options' model, seeds, episodes, frames and ``--set`` items."""
    return Drive(SET, model_stem(options.model), options.seed, options.episodes, options.max_steps,
                 options.out / "up.log", tuple(options.set_params))


def drone_drives(options: DemoOptions) -> list[Drive]:
    """The drone's runs: ``up drone-sim-drive``, one flight per domain of ``drone_domains``."""
    model = model_stem(options.drone_model, DRONE_MODEL)
    out = options.out / "drone"
    return [Drive(DRONE_SET, model, options.drone_seed, 1, options.drone_max_steps, out / f"up_{domain}.log",
                  (f"sim_node.domain={domain}",), label=domain) for domain in options.drone_domains]


def run_drive(options: DemoOptions) -> int:
    """The car's drive, then the drone's flights: each watched and reported; every ``up`` is stopped on every way
    out."""
    from lnn_control.ros import env as ros_env

    if options.episodes < 1 or options.max_steps < 1 or options.seed < 1:
        raise DemoError("--episodes, --max-steps and --seed must be at least 1 (seed - 1 drives the warm-up)")
    if options.drone and (options.drone_seed < 1 or options.drone_max_steps < 1 or not options.drone_domains):
        raise DemoError("--drone-seed and --drone-max-steps must be at least 1 and --drone-domains name one")
    if not options.car and not options.drone:
        raise DemoError("--no-car and --no-drone leave nothing to run")
    started = time.monotonic()
    env = ros_env.local_env(options.domain_id)
    env["PYTHONUNBUFFERED"] = "1"
    tables: list[str] = []
    if options.car:
        tables.append(car_part(options, env, started))
    if options.drone:
        tables.append(drone_part(options, env, started))
    for table in tables:
        print(table, flush=True)
    say(f"done in {time.monotonic() - started:.0f} s")
    return 0


def car_part(options: DemoOptions, env: dict[str, str], started: float) -> str:
    """Drive the car, replay its first episode for the activity, write ``OUT``'s report; the score table."""
    drive = car_drive(options)
    say(f"the car: model {drive.model} on seeds {drive.seed}..{drive.seed + drive.episodes - 1} (new to it), "
        f"{drive.episodes} episode(s) of at most {drive.max_steps} frames")
    watched = watch_drive(drive, options, env, started)
    results = watched.results
    first = results[0] if results else None
    if first is not None and first.frames is not None:
        agreement = add_activity(first, drive.model, SET, ("steering",))
        say(f"replayed seed {first.seed}'s {first.steps} frames through Driver.observe for the neuron "
            f"activity: its steering {agreement_text(agreement)}"
            + (f" ({watched.missing[0]} frames were not seen over ROS: the one before stands in)"
               if watched.missing[0] else ""))
    meta = run_meta(watched, options)
    meta["not_seen_over_ros"] = not_seen(watched)  # per seed; frames only for the episodes whose frames were kept
    paths = _write_report(options.out, results, meta, options.gif_seconds)
    say(f"report: {paths['dir']} ({', '.join(sorted(p.name for k, p in paths.items() if k != 'dir'))}); "
        f"at {time.monotonic() - started:.0f} s")
    return score_table(results)


def drone_part(options: DemoOptions, env: dict[str, str], started: float) -> str:
    """Fly the drone once per domain, replay each flight through Driver.observe, write ``OUT/drone``'s report; the
    outcome table."""
    drives = drone_drives(options)
    schema = model_schema(drives[0].model)
    say(f"the drone: model {drives[0].model} ({', '.join(schema.names)}), seed {options.drone_seed} (new to it) in "
        f"{', '.join(options.drone_domains)}, one flight each")
    began = time.monotonic()
    runs = [watch_drive(drive, options, env, started, schema) for drive in drives]
    results = [r for w in runs for r in w.results]
    agreement: dict[str, dict[str, int]] = {}
    for run in runs:
        for result in run.results:
            if result.frames is None:
                continue
            found = add_activity(result, run.drive.model, DRONE_SET, schema.names)
            agreement[run.drive.label] = dataclasses.asdict(found)
            say(f"replayed the {run.drive.label} flight's {result.steps} frames through Driver.observe: its "
                f"{', '.join(schema.names)} {agreement_text(found)}")
    meta = {
        **run_meta(runs[0], options),
        "how": [run.how for run in runs],
        "seeds": [r.seed for r in results],
        "domains": list(options.drone_domains),
        "task": runs[0].sim.get("task"),
        "action": list(schema.names),
        "seen_over_ros": {run.drive.label: run.counts for run in runs},
        "not_seen_over_ros": {run.drive.label: not_seen(run) for run in runs},
        "replay_equals_received": agreement,
        "sim_bad_commands": {run.drive.label: bad_commands(run) for run in runs},
        "drive_wall_s": round(time.monotonic() - began, 1),
    }
    gif_seconds = max(r.sim_time_s for r in results) if options.gif_seconds > 0 and results else 0.0
    paths = _write_report(options.out / "drone", results, meta, gif_seconds)
    say(f"report: {paths['dir']} ({', '.join(sorted(p.name for k, p in paths.items() if k != 'dir'))}); the drone "
        f"took {time.monotonic() - began:.0f} s")
    return outcome_table(results)


def agreement_text(found: Agreement) -> str:
    """``equals the command the sim received on N of M frames`` (and on how many the sim took the one before)."""
    text = f"equals the command the sim received on {found.same} of {found.compared} frames"
    if found.previous:
        text += (f"; on {found.previous} more the sim stepped on its answer to the frame before (the mux repeated "
                 "that command, restamped with the new frame's time, before drive_node answered)")
    return text


def run_meta(watched: Watched, options: DemoOptions) -> dict[str, Any]:
    """The report's ``meta`` of one run (the drone's adds to it)."""
    drive = watched.drive
    return {
        "controller": drive.model.name,
        "model": str(drive.model),
        "how": watched.how,
        "layout": "one process per node" if options.processes else "one process",
        "seeds": [r.seed for r in watched.results],
        "max_steps": drive.max_steps,
        "ros_domain_id": watched.ros_domain_id,
        "seen_over_ros": watched.counts,
        "drive_wall_s": round(watched.wall_s, 1),
    }


def not_seen(watched: Watched) -> dict[str, dict[str, int | None]]:
    """Per seed, the frames (for the episodes whose frames were kept), commands and truth messages not seen."""
    return {
        str(r.seed): {"frames": m, "commands": r.steps - r.observed, "truth": int(np.isnan(r.series["speed"]).sum())}
        for r, m in zip(watched.results, watched.missing, strict=True)
    }


def bad_commands(watched: Watched) -> int | None:
    """sim_node's count of commands it clamped or replaced (its truth's counter) at the end of the run; None unseen."""
    seen = [r.series["truth_bad_commands"] for r in watched.results if "truth_bad_commands" in r.series]
    finite = [float(np.nanmax(v)) for v in seen if np.isfinite(v).any()]
    return int(max(finite)) if finite else None


def watch_drive(drive: Drive, options: DemoOptions, env: dict[str, str], started: float,
                schema: ActionSchema | None = None) -> Watched:
    """Start ``up`` for ``drive``, watch its episodes to the end (:func:`watch`), stop it; what was seen."""
    from lnn_control import bringup

    try:
        plan = bringup.make_plan(drive.node_set, local=True, set_items=drive.up_settings(), base_env=env)
    except bringup.BringupError as exc:
        raise DemoError(f"lnn-control up {drive.node_set}: {exc}") from exc
    sim = bringup.node_params(plan.params, "sim_node")
    argv = drive.up_arguments(options.processes)
    drive.log_path.parent.mkdir(parents=True, exist_ok=True)
    say(f"starting lnn-control up {' '.join(argv[:2])} ({', '.join(plan.nodes)}"
        f"{', one process each' if options.processes else ', one process'}"
        f"{f', domain {drive.label}' if drive.label else ''}) on ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']}, log in "
        f"{drive.log_path}")
    began = time.monotonic()
    proc = None
    keep = frozenset(range(1, drive.episodes + 1)) if schema is not None else frozenset({1})
    with observing(env, bool(sim.get("stamped", False)), schema or CAR, keep) as observer:
        try:
            with open(drive.log_path, "w", encoding="utf-8") as log:
                proc = processes.start([sys.executable, "-m", "lnn_control.cli", "up", *argv], env=env, stdout=log,
                                       stderr=subprocess.STDOUT)
                watch(observer, proc, drive, options, started)
        finally:
            if proc is not None:
                processes.stop(proc)  # up stops its nodes; they die with it whatever happens
        results = observer.results()
        missing = [observer.missing_frames(r) if r.frames is not None else None for r in results]
        counts = dict(observer.counts)
    say(f"lnn-control up stopped; {counts['frames']} frames, {counts['commands']} commands and {counts['truth']} "
        f"truth messages seen over ROS")
    if not results:
        raise DemoError(f"no episode of lnn-control up {drive.node_set} finished: nothing to report")
    return Watched(drive, f"lnn-control {' '.join(['up', *argv])}", sim, int(env["ROS_DOMAIN_ID"]), results, missing,
                   counts, time.monotonic() - began)


@contextlib.contextmanager
def observing(env: dict[str, str], stamped: bool, schema: ActionSchema | None = None,
              keep_frames: frozenset[int] = frozenset({1})) -> Iterator[Any]:
    """A :class:`~lnn_control.ros.sim_observer.SimObserver` spinning on a thread of its own, in ``env``'s DDS domain
    and Fast DDS profile (those ``up --local`` runs with), reading commands as ``schema`` (default: the car's);
    rclpy installs no signal handlers (Ctrl-C is ours)."""
    from lnn_control.ros import env as ros_env

    ros_env.apply(env)
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    from lnn_control.ros.sim_observer import SimObserver

    context = rclpy.Context()
    rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
    observer = SimObserver(stamped=stamped, schema=schema or CAR, keep_frames=keep_frames, context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(observer)

    def spin() -> None:
        with contextlib.suppress(ExternalShutdownException):
            executor.spin()

    spinner = threading.Thread(target=spin, name="demo-observer", daemon=True)
    spinner.start()
    try:
        yield observer
    finally:
        executor.shutdown()
        observer.destroy_node()
        rclpy.try_shutdown(context=context)
        spinner.join(timeout=5)


def watch(observer: Any, proc: subprocess.Popen, drive: Drive, options: DemoOptions, started: float) -> None:
    """Wait for ``drive``'s episodes, printing progress; DemoError if ``up`` exits, no frame comes, or the sim
    stalls."""
    reported, last_key, last_change, last_line = 0, None, time.monotonic(), 0.0
    began = time.monotonic()
    started_count, reset = 0, None  # reported episodes started through sim_node/reset; the reset in flight
    while True:
        finished = observer.finished()
        # sim_node idles after each episode (auto_reset off): every reported episode starts when the observer is
        # connected and the one before is done, so none is seen in part, however short the warm-up
        connected = observer.ready() or observer.warm_up_ended()
        if reset is None and started_count < drive.episodes and len(finished) == started_count and connected:
            reset = observer.request_reset()  # None until the service is discovered: try again
        elif reset is not None and reset.done():
            response = reset.result()
            if response is None or not response.success:
                raise DemoError(f"sim_node/reset failed: {getattr(response, 'message', 'no response')}")
            if started_count == 0:
                say(f"observer connected during a warm-up on seed {drive.seed - 1}: {response.message}")
            started_count, reset = started_count + 1, None
        for event in finished[reported:]:
            say(f"{episode_line(event, drive)}, at {time.monotonic() - started:.0f} s")
        reported = len(finished)
        if reported >= drive.episodes:
            last = finished[-1]  # the end event may overtake the episode's last truth message (another topic)
            if not observer.wait_for_truth(int(last["episode"]), int(last["steps"]), options.stall_timeout):
                say(f"the last truth message of episode {last['episode']} did not come within "
                    f"{options.stall_timeout:g} s; reporting without it")
            return
        status = proc.poll()
        if status is not None:
            raise DemoError(f"lnn-control up {drive.node_set} exited with status {status} before the "
                            f"{drive.episodes} episode(s) were done; the end of {drive.log_path}:\n"
                            f"{_tail(drive.log_path)}")
        now = time.monotonic()
        latest = observer.latest()
        if observer.first_frame_wall is None and now - began > options.startup_timeout:
            raise DemoError(f"no frame on camera/image_raw within {options.startup_timeout:g} s of starting up "
                            f"(sim_node or DDS); the end of {drive.log_path}:\n{_tail(drive.log_path)}")
        key = None if latest is None else (latest["episode"], latest["step"])
        if key != last_key:
            last_key, last_change = key, now
        elif key is not None and now - last_change > options.stall_timeout:
            raise DemoError(f"the simulator made no step for {options.stall_timeout:g} s (episode {key[0]:.0f}, "
                            f"step {key[1]:.0f}); the end of {drive.log_path}:\n{_tail(drive.log_path)}")
        if latest is not None and latest["episode"] >= 1 and now - last_line >= 10.0:
            say(progress_line(latest, drive))
            last_line = now
        time.sleep(0.2)


def episode_line(event: dict[str, Any], drive: Drive) -> str:
    """The progress line of an episode's end event: the car's score, or a task's outcome (the drone's)."""
    head = f"episode {event['episode']}/{drive.episodes}, seed {event['seed']}"
    if "success" in event:
        from lnn_control.ros.sim_observer import outcome_name

        ttt = event.get("time_to_target_s")
        reached = f", target reached at {ttt:.1f} s" if isinstance(ttt, (int, float)) and np.isfinite(ttt) else ""
        return (f"{head} ({drive.label}): {outcome_name(event, str(event.get('reason', '')))}{reached}, "
                f"{float(event.get('final_distance_m', np.nan)):.1f} m from the target, {event['steps']} steps "
                f"({event['reason']})")
    return (f"{head}: reward {event['score']:.1f}, {event['laps']} lap(s), {event['tiles_visited']}/"
            f"{event['tiles_total']} tiles, {event['steps']} steps ({event['reason']})")


def progress_line(latest: dict[str, float], drive: Drive) -> str:
    """A progress line from the newest truth values."""
    head = f"episode {latest['episode']:.0f}/{drive.episodes}: step {latest['step']:.0f}"
    if "target_distance" in latest:
        return f"{head} ({drive.label}), {latest['target_distance']:.1f} m from the target, {latest['speed']:.1f} m/s"
    return f"{head}, reward {latest['total_reward']:.1f}, {latest['speed']:.0f} m/s"


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass(frozen=True)
class Agreement:
    """How the commands the simulator received compare with a replay of the same frames through Driver.observe."""

    same: int
    """Frames whose received command equals the replay's answer to that frame (every field, to 1e-5)."""
    previous: int
    """Other frames whose received command equals the replay's answer to the frame before: the sim stepped on an
    older command (the mux's timer repeat of it, restamped with the new frame's time, came first)."""
    compared: int
    """Frames whose answering command was seen."""


def add_activity(result: Any, model: Path, node_set: str = SET, fields: Sequence[str] | None = None) -> Agreement:
    """Replay ``result``'s frames through a Driver as ``node_set``'s drive node builds it, set ``result.activity``,
    and compare the replay's commands in ``fields`` (default: the model's action's) with those the simulator received.

    Expect all but the first to be the same: in lockstep the mux's own zero command, stamped with the sim time before
    the policy's first answer, answers the first frame.
    """
    import torch

    from lnn_control.driver import Driver
    from lnn_control.nn.checkpoint import load
    from lnn_control.replay import replay
    from lnn_control.sim.closed_loop import sim_driver_config

    torch.set_num_threads(1)
    driver = Driver(load(model), sim_driver_config(node_set))
    names = tuple(fields or driver.schema.names)
    stamps = [int(s) for s in result.series["stamp_ns"]]
    records = list(replay(zip(result.frames, stamps, strict=True), driver, activity=True))
    result.activity = np.stack([r.output.activity for r in records])
    # the received series are float32: so is the replay's command before comparing
    ours = {r.stamp_ns: np.array([r.command.get(n) for n in names], np.float32) for r in records}
    before = dict(zip(stamps[1:], stamps[:-1], strict=True))
    same = previous = compared = 0
    for j, stamp in enumerate(stamps):
        if not result.series["observed"][j] or stamp not in ours:
            continue
        received = np.array([result.series[n][j] for n in names], np.float32)
        compared += 1
        if np.all(np.abs(ours[stamp] - received) <= 1e-5):
            same += 1
        elif stamp in before and np.all(np.abs(ours.get(before[stamp], np.nan) - received) <= 1e-5):
            previous += 1
    return Agreement(same, previous, compared)


def _write_report(out: Path, results: list, meta: dict[str, Any], gif_seconds: float) -> dict[str, Path]:
    from lnn_control.report.episodes import write_report

    if not results:
        raise DemoError("no episode finished: nothing to report")
    say(f"writing the report in {out} (GIF of the first {gif_seconds:g} s of seed {results[0].seed}, plots)")
    return write_report(out, results, meta, gif_seconds=gif_seconds)


def score_table(results: Sequence[Any]) -> str:
    """The car's per-episode scores, as ``sim-eval`` prints them, and their mean."""
    from lnn_control.report.tables import episode_table

    rewards = np.array([r.reward for r in results])
    return (f"{episode_table(results)}\nreward {rewards.mean():.1f} +- {rewards.std():.1f} over {len(results)} "
            f"episode(s), {sum(r.laps for r in results)} lap(s)")


def outcome_table(results: Sequence[Any]) -> str:
    """The drone's flights: seed, domain, outcome, time to target, final distance, ...; and the successes."""
    from lnn_control.report.tables import episode_table

    wins = sum(bool(r.outcome.get("success")) for r in results)
    crashes = sum(bool(r.outcome.get("collided")) for r in results)
    return f"{episode_table(results)}\nsuccess {wins}/{len(results)}, {crashes} collision(s)"


# -- the offline pipeline (--offline) -------------------------------------------------------------------------------

TUB = SOURCE_ROOT.parent / "shared" / "data" / "donkeycar_tub" / "tub.tar.gz"

#: The tub's 160x120 frames: the top 40 rows show the room above the track; 80x160 left, resized to 56x112.
TUB_OVERRIDES = [
    "preprocess.crop_top=40",
    "preprocess.height=56",
    "preprocess.width=112",
    "dataset.window=16",
    "dataset.stride=4",
    "training.batch_size=16",
    "training.lr=0.003",
    "training.epochs=12",
    "training.patience=6",
    "training.output_weights=[1.0, 0.25]",
    "training.tensorboard=false",
]


@dataclass
class DemoOptions:
    """What ``lnn-control demo`` is asked for (its options, by the same names)."""

    out: Path = Path("reports/demo")
    model: str | None = None
    """Checkpoint (stem, .json, .safetensors or a name in models/); None: :data:`DEFAULT_MODEL`."""
    episodes: int = 3
    seed: int = FIRST_UNSEEN_SEED
    max_steps: int = 1000
    processes: bool = False
    set_params: list[str] = field(default_factory=list)
    gif_seconds: float = 20.0
    """The car's GIF, s of sim time (the drone's shows its first flight whole); 0: none."""
    car: bool = True
    drone: bool = True
    drone_model: str | None = None
    """The drone's checkpoint; None: :data:`DRONE_MODEL`."""
    drone_domains: tuple[str, ...] = DRONE_DOMAINS
    drone_seed: int = FIRST_UNSEEN_SEED
    drone_max_steps: int = DRONE_MAX_STEPS
    domain_id: int | None = None
    startup_timeout: float = 120.0
    stall_timeout: float = 30.0
    offline: bool = False
    tub: Path = TUB
    minutes: float = 2.0
    core: str = "ltc"
    threads: int = 2


def tub_bags(tub: Path, out: Path) -> tuple[list[Path], list[Path], list[Path], list[str]]:
    """Import the tub as three episodes: train (640 frames), validate (160), held out (200)."""
    from lnn_control.data.tub import import_tub

    report = import_tub(tub, out / "bags" / "tub", split_at=[640, 800])
    train, val, test = (Path(b) for b in report.bags)
    say(f"imported {report.frames_written} frames of {tub.name}: train 640, validate 160, held out 200")
    return [train], [val], [test], TUB_OVERRIDES


def sim_bags(out: Path) -> tuple[list[Path], list[Path], list[Path], list[str]]:
    """Record the demonstrator in the simulator through ROS: one bag per seed (train, validate, held out)."""
    bags = []
    for name, seed in (("train", 9001), ("validate", 9002), ("held_out", 9003)):
        folder = out / "bags" / name
        say(f"recording the demonstrator on seed {seed} ({name}) through lnn-control up record-sim")
        command = [
            sys.executable, "-m", "lnn_control.cli", "up", "record-sim", "--local", "--processes", "--duration", "60",
            "--set", f"sim_node.seed={seed}", "--set", "sim_node.episodes=1", "--set", "sim_node.max_steps=400",
            "--set", f"recorder_node.output_dir={folder}",
        ]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        bags.append(sorted(p for p in folder.iterdir() if p.is_dir()))
    return bags[0], bags[1], bags[2], [f"@{config_file('train_carracing.yaml')}"]


def run_offline(options: DemoOptions) -> int:
    """Import (or record), train, replay the held-out part; print where everything went."""
    import torch

    from lnn_control.evaluate import evaluate_bags, load_models
    from lnn_control.train import load_config, train

    torch.set_num_threads(options.threads)
    out: Path = options.out
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if options.tub.exists():
        train_bags, val_bags, test_bags, overrides = tub_bags(options.tub, out)
    else:
        say(f"{options.tub} is not here (a fresh clone has no ../shared/data): using the simulator instead")
        train_bags, val_bags, test_bags, overrides = sim_bags(out)
    config_path = None
    if overrides and overrides[0].startswith("@"):
        config_path, overrides = overrides[0][1:], overrides[1:]
    config = load_config(config_path, overrides + [
        f"model.core={options.core}", f"training.threads={options.threads}",
        f"training.time_limit_s={options.minutes * 60:g}", f"training.cache_dir={out / 'cache'}",
    ])
    say(f"training an {options.core.upper()} policy for about {options.minutes:g} min (lnn-control train)")
    run_ = train(config, train_bags, out / "model", val_bags=val_bags)
    say(f"trained {run_.epochs_run} epochs (best {run_.best_epoch}); model in {out / 'model' / 'best.safetensors'}")
    say("replaying the held-out frames through Driver.observe, the drive node's path (lnn-control eval)")
    models = load_models([out / "model" / "best"], [options.core])
    result = evaluate_bags(models, test_bags, out / "eval", saliency_frames=100)
    rows = {(r["model"], r["output"]): r for r in result.rows if r["bag"] == "all"}
    base = next(m for m, _ in rows if m.startswith("baseline"))
    summary = {}
    for output in models[0].schema.names:
        ours, const = rows[(options.core, output)], rows[(base, output)]
        summary[output] = {"mae": ours["mae"], "baseline_mae": const["mae"], "corr": ours["corr"]}
        say(f"held-out {output}: MAE {ours['mae']:.4f} (corr {ours['corr']:.3f}) vs constant-mean baseline "
            f"{const['mae']:.4f}")
    counts = models[0].policy.parameter_counts()
    say(f"the policy: {counts.get('neurons', '-')} neurons, {counts['recurrent']:,} recurrent parameters net of "
        f"masks, {counts['total']:,} in all")
    say(f"report: {out / 'eval'} (metrics, plots, saliency GIF, neuron activity); took "
        f"{time.perf_counter() - started:.0f} s")
    document = {"core": options.core, "results": summary, "parameters": counts}
    (out / "summary.json").write_text(json.dumps(document) + "\n")
    return 0

"""``lnn-control demo``: the shipped liquid policy drives the CarRacing simulator through ROS (what ``make demo`` runs).

1. start ``lnn-control up sim-drive --local`` (sim_node -> drive_node with ``models/ltc_ncp_carracing`` -> command
   mux -> sim_node, over Fast DDS, lockstep, on sim time) for ``--episodes`` episodes on seeds from ``--seed`` (1000:
   the model trained on seeds 100-103 and validated on 200, so these tracks are new to it);
2. watch it from this process with an rclpy observer (:mod:`lnn_control.ros.sim_observer`) on the same private DDS
   domain: the camera, the commands the simulator receives, its ground truth and episode events;
3. stop ``up`` when the episodes are done (the last episode's end event and its last truth message arrived), replay
   the first episode's frames through :mod:`lnn_control.replay` (``Driver.observe``, the drive node's path) for the
   neuron activity, compare its steering with the commands the simulator received
   (:func:`lnn_control.compare.compare_streams`), and write the report folder (``--out``, default ``reports/demo``)
   with :mod:`lnn_control.report.episodes`, as ``sim-eval`` does: ``episodes.csv``, ``summary.json``, a GIF with the
   steering overlay, ``timeseries.png`` and ``activity.png``; ``up.log`` holds the nodes' output.

``lnn-control demo --offline`` runs the earlier offline pipeline instead: import the Donkeycar tub (or record the
demonstrator), train a small LTC-NCP for ``--minutes``, replay the held-out frames, report under ``--out``.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lnn_control import processes
from lnn_control.paths import SOURCE_ROOT, ModelNotFoundError, config_file, resolve_model

DEFAULT_MODEL = "ltc_ncp_carracing"
#: The shipped model trained on seeds 100-103 and was validated on 200: the demo drives from here on.
FIRST_UNSEEN_SEED = 1000
SET = "sim-drive"


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


def model_stem(name: str | None) -> Path:
    """The absolute checkpoint stem of ``name`` (default: the shipped :data:`DEFAULT_MODEL`), as
    :func:`lnn_control.paths.resolve_model` reads it; DemoError naming what is missing."""
    try:
        return resolve_model(name or DEFAULT_MODEL).resolve()
    except ModelNotFoundError as exc:
        raise DemoError(str(exc)) from exc


def up_settings(options: DemoOptions, model: Path) -> list[str]:
    """The ``NODE.PARAM=VALUE`` settings of ``lnn-control up sim-drive`` the demo runs: a warm-up episode on seed
    ``seed - 1`` (cut short once the observer is connected, see :mod:`lnn_control.ros.sim_observer`), then
    ``episodes`` from ``seed``, each started by the demo through ``sim_node/reset`` (``auto_reset`` off); then
    ``set_params``."""
    return [f"drive_node.model={model}", f"sim_node.seed={options.seed - 1}",
            f"sim_node.episodes={options.episodes + 1}", f"sim_node.max_steps={options.max_steps}",
            "sim_node.auto_reset=false", *options.set_params]


def up_arguments(options: DemoOptions, model: Path) -> list[str]:
    """The ``lnn-control up`` command line of :func:`up_settings`."""
    argv = [SET, "--local"]
    for item in up_settings(options, model):
        argv += ["--set", item]
    return argv + (["--processes"] if options.processes else [])


def run_drive(options: DemoOptions) -> int:
    """Drive, watch, report; ``up`` is stopped on every way out."""
    from lnn_control import bringup
    from lnn_control.ros import env as ros_env

    if options.episodes < 1 or options.max_steps < 1 or options.seed < 1:
        raise DemoError("--episodes, --max-steps and --seed must be at least 1 (seed - 1 drives the warm-up)")
    started = time.monotonic()
    model = model_stem(options.model)
    env = ros_env.local_env(options.domain_id)
    env["PYTHONUNBUFFERED"] = "1"
    argv = up_arguments(options, model)
    try:
        plan = bringup.make_plan(SET, local=True, set_items=up_settings(options, model), base_env=env)
    except bringup.BringupError as exc:
        raise DemoError(f"lnn-control up {SET}: {exc}") from exc
    stamped = bool(bringup.node_params(plan.params, "sim_node").get("stamped", False))
    out: Path = options.out
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "up.log"
    say(f"model {model} on seeds {options.seed}..{options.seed + options.episodes - 1} (new to it), {options.episodes} "
        f"episode(s) of at most {options.max_steps} frames")
    say(f"starting lnn-control up {' '.join(argv[:2])} ({', '.join(plan.nodes)}"
        f"{', one process each' if options.processes else ', one process'}) on ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']}, "
        f"log in {log_path}")

    proc = None
    with observing(env, stamped) as observer:
        try:
            with open(log_path, "w", encoding="utf-8") as log:
                proc = processes.start([sys.executable, "-m", "lnn_control.cli", "up", *argv], env=env, stdout=log,
                                       stderr=subprocess.STDOUT)
                watch(observer, proc, options, log_path, started)
        finally:
            if proc is not None:
                processes.stop(proc)  # up stops its nodes; they die with it whatever happens
        results = observer.results()
        missing = [observer.missing_frames(r) if r.frames is not None else None for r in results]
        counts = dict(observer.counts)
    drive_s = time.monotonic() - started
    say(f"lnn-control up stopped; {counts['frames']} frames, {counts['commands']} commands and {counts['truth']} "
        f"truth messages seen over ROS")
    if results and results[0].frames is not None:
        same, compared = add_activity(results[0], model)
        say(f"replayed seed {results[0].seed}'s {results[0].steps} frames through Driver.observe for the neuron "
            f"activity: its steering equals the command the sim received on {same} of {compared} frames"
            + (f" ({missing[0]} frames were not seen over ROS: the one before stands in)" if missing[0] else ""))
    meta = {
        "controller": model.name,
        "model": str(model),
        "how": f"lnn-control {' '.join(['up', *argv])}",
        "layout": "one process per node" if options.processes else "one process",
        "seeds": [r.seed for r in results],
        "max_steps": options.max_steps,
        "ros_domain_id": int(env["ROS_DOMAIN_ID"]),
        "seen_over_ros": counts,
        "not_seen_over_ros": {  # per seed; frames only for the episodes whose frames were kept
            str(r.seed): {"frames": m, "commands": r.steps - r.observed,
                          "truth": int(np.isnan(r.series["speed"]).sum())} for r, m in zip(results, missing)
        },
        "drive_wall_s": round(drive_s, 1),
    }
    paths = _write_report(out, results, meta, options.gif_seconds)
    print_table(results)
    say(f"report: {paths['dir']} ({', '.join(sorted(p.name for k, p in paths.items() if k != 'dir'))}); "
        f"took {time.monotonic() - started:.0f} s")
    return 0


@contextlib.contextmanager
def observing(env: dict[str, str], stamped: bool) -> Iterator[Any]:
    """A :class:`~lnn_control.ros.sim_observer.SimObserver` spinning on a thread of its own, in ``env``'s DDS domain
    and Fast DDS profile (those ``up --local`` runs with); rclpy installs no signal handlers (Ctrl-C is ours)."""
    from lnn_control.ros import env as ros_env

    ros_env.apply(env)
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    from lnn_control.ros.sim_observer import SimObserver

    context = rclpy.Context()
    rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
    observer = SimObserver(stamped=stamped, context=context)
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


def watch(observer: Any, proc: subprocess.Popen, options: DemoOptions, log_path: Path, started: float) -> None:
    """Wait for the episodes, printing progress; DemoError if ``up`` exits, no frame comes, or the sim stalls."""
    reported, last_key, last_change, last_line = 0, None, time.monotonic(), 0.0
    started_count, reset = 0, None  # reported episodes started through sim_node/reset; the reset in flight
    while True:
        finished = observer.finished()
        # sim_node idles after each episode (auto_reset off): every reported episode starts when the observer is
        # connected and the one before is done, so none is seen in part, however short the warm-up
        connected = observer.ready() or observer.warm_up_ended()
        if reset is None and started_count < options.episodes and len(finished) == started_count and connected:
            reset = observer.request_reset()  # None until the service is discovered: try again
        elif reset is not None and reset.done():
            response = reset.result()
            if response is None or not response.success:
                raise DemoError(f"sim_node/reset failed: {getattr(response, 'message', 'no response')}")
            if started_count == 0:
                say(f"observer connected during a warm-up on seed {options.seed - 1}: {response.message}")
            started_count, reset = started_count + 1, None
        for event in finished[reported:]:
            say(f"episode {event['episode']}/{options.episodes}, seed {event['seed']}: reward {event['score']:.1f}, "
                f"{event['laps']} lap(s), {event['tiles_visited']}/{event['tiles_total']} tiles, {event['steps']} "
                f"steps ({event['reason']}), at {time.monotonic() - started:.0f} s")
        reported = len(finished)
        if reported >= options.episodes:
            last = finished[-1]  # the end event may overtake the episode's last truth message (another topic)
            if not observer.wait_for_truth(int(last["episode"]), int(last["steps"]), options.stall_timeout):
                say(f"the last truth message of episode {last['episode']} did not come within "
                    f"{options.stall_timeout:g} s; reporting without it")
            return
        status = proc.poll()
        if status is not None:
            raise DemoError(f"lnn-control up {SET} exited with status {status} before the {options.episodes} "
                            f"episode(s) were done; the end of {log_path}:\n{_tail(log_path)}")
        now = time.monotonic()
        latest = observer.latest()
        if observer.first_frame_wall is None and now - started > options.startup_timeout:
            raise DemoError(f"no frame on camera/image_raw within {options.startup_timeout:g} s of starting up "
                            f"(sim_node or DDS); the end of {log_path}:\n{_tail(log_path)}")
        key = None if latest is None else (latest["episode"], latest["step"])
        if key != last_key:
            last_key, last_change = key, now
        elif key is not None and now - last_change > options.stall_timeout:
            raise DemoError(f"the simulator made no step for {options.stall_timeout:g} s (episode {key[0]:.0f}, "
                            f"step {key[1]:.0f}); the end of {log_path}:\n{_tail(log_path)}")
        if latest is not None and latest["episode"] >= 1 and now - last_line >= 10.0:
            say(f"episode {latest['episode']:.0f}/{options.episodes}: step {latest['step']:.0f}, reward "
                f"{latest['total_reward']:.1f}, {latest['speed']:.0f} m/s")
            last_line = now
        time.sleep(0.2)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def add_activity(result: Any, model: Path) -> tuple[int, int]:
    """Replay ``result``'s frames through a Driver as the drive node builds it and set ``result.activity``.

    Returns on how many of the frames whose answering command was seen the replay's steering equals it (to 1e-5),
    and of how many. Expect all but the first: in lockstep the mux's own zero command, stamped with the sim time
    before the policy's first answer, answers the first frame.
    """
    import torch

    from lnn_control.compare import compare_streams
    from lnn_control.driver import Driver, load_driver_config
    from lnn_control.nn.checkpoint import load
    from lnn_control.replay import replay

    torch.set_num_threads(1)
    driver = Driver(load(model), load_driver_config(config_file("sim.yaml")))
    stamps = [int(s) for s in result.series["stamp_ns"]]
    records = list(replay(zip(result.frames, stamps, strict=True), driver, activity=True))
    result.activity = np.stack([r.output.activity for r in records])
    ours = {r.stamp_ns: {"steering": float(np.float32(r.command.steering))} for r in records}
    series = zip(stamps, result.series["steering"], result.series["observed"], strict=True)
    received = {s: {"steering": float(v)} for s, v, seen in series if seen}
    diff = compare_streams(ours, received, tol=1e-5).fields["steering"]
    return diff.same, diff.compared


def _write_report(out: Path, results: list, meta: dict[str, Any], gif_seconds: float) -> dict[str, Path]:
    from lnn_control.report.episodes import write_report

    if not results:
        raise DemoError("no episode finished: nothing to report")
    say(f"writing the report (GIF of the first {gif_seconds:g} s of seed {results[0].seed}, plots)")
    return write_report(out, results, meta, gif_seconds=gif_seconds)


def print_table(results: list) -> None:
    """The per-episode scores, as ``sim-eval`` prints them."""
    from lnn_control.report.tables import episode_table

    print(episode_table(results))
    rewards = np.array([r.reward for r in results])
    print(f"reward {rewards.mean():.1f} +- {rewards.std():.1f} over {len(results)} episode(s), "
          f"{sum(r.laps for r in results)} lap(s)", flush=True)


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

"""Closed-loop evaluation in the simulator, in-process (no DDS): what ``lnn-control sim-eval`` runs.

A *controller* is anything with ``reset()`` and ``observe(frame, stamp_ns) -> Command`` (the learned policy's
``Driver`` has exactly that; the demonstrator has :class:`~lnn_control.sim.expert.ExpertController`). A controller may
expose ``last_activity`` (a 1-D array per call, e.g. neuron states) to get activity plots in the report.

One episode (:func:`run_episode`)::

    obs = sim.reset(seed); controller.reset(); perturber.reset(seed)
    repeat: unless the frame is dropped, command = controller.observe(perturbed frame, obs.stamp_ns)
            obs = sim.step(perturber.delay(command))          # a dropped frame holds the previous command

:func:`sim_eval` (``lnn-control sim-eval``) runs :func:`run_episodes` over seeds and writes a report folder
(:mod:`lnn_control.report.episodes`).
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from lnn_control.command import CAR, Command
from lnn_control.paths import config_file
from lnn_control.sim.backends import SimSpec
from lnn_control.sim.base import Simulator
from lnn_control.sim.perturb import PerturbConfig, Perturber

if TYPE_CHECKING:  # the Driver pulls in torch; sim-eval --baseline expert does without it; CarRacing: gymnasium
    from lnn_control.driver import Driver, DriverConfig
    from lnn_control.sim.expert import ExpertConfig

LOG = logging.getLogger(__name__)

#: The node set whose drive_node sim-eval drives as (its config files give the Driver's settings).
SIM_NODE_SET = "sim-drive"
#: Added to an episode's seed to seed its perturbations (so they do not share a stream with the track).
PERTURB_SEED_OFFSET = 1_000_003


@runtime_checkable
class Controller(Protocol):
    """What drives in closed loop: the learned policy's Driver, the expert adapter, a constant."""

    def reset(self) -> None:
        """Forget all state (called after the simulator's reset, before the first frame)."""
        ...

    def observe(self, frame: np.ndarray, stamp_ns: int) -> Command:
        """The command for a camera frame taken at ``stamp_ns`` (sim time, ns)."""
        ...


class ConstantController:
    """Always the same command (a cheap controller for benchmarks and sanity checks); the car's by default."""

    def __init__(self, command: Command | None = None):
        self.command = command if command is not None else CAR.of(velocity=10.0)

    def reset(self) -> None:
        pass

    def observe(self, frame: np.ndarray, stamp_ns: int) -> Command:
        return self.command.restamped(stamp_ns)


@dataclass
class EpisodeResult:
    """One closed-loop episode."""

    seed: int
    reward: float
    """Total reward (the backend's)."""
    laps: int
    """Laps completed."""
    tiles_visited: int
    tiles_total: int
    off_track_s: float
    """Sim time with the vehicle off the track, s."""
    steps: int
    sim_time_s: float
    terminated: bool
    truncated: bool
    observed: int
    """Frames the controller saw (``steps`` minus dropped frames)."""
    wall_s: float
    """Wall-clock time of the episode loop, s."""
    series: dict[str, np.ndarray] = field(default_factory=dict)
    """Per-step time series: ``t_s``; per field of the simulator's action, ``<field>`` (applied) and ``cmd_<field>``
    (decided, before latency), e.g. ``steering``, ``cmd_velocity``; ``speed`` (measured), ``on_track``, ``observed``,
    ``total_reward``, ``offset``."""
    frames: np.ndarray | None = None
    """``(steps, H, W, 3)`` uint8, the controller's view of each step (a dropped step repeats the previous view)."""
    activity: np.ndarray | None = None
    """``(steps, N)`` float32 from the controller's ``last_activity`` (held on dropped steps), if it has one."""
    outcome: dict[str, Any] = field(default_factory=dict)
    """The task's own figures of the episode, from the backend's ``episode_outcome`` (the drone: ``success``,
    ``collided``, ``time_to_target_s``, ``final_distance_m``, ``ended_by``); empty for a backend without one (the car's
    figures are the fields above)."""

    @property
    def steps_per_s(self) -> float:
        """Closed-loop steps per wall-clock second."""
        return self.steps / self.wall_s if self.wall_s > 0 else math.nan

    def row(self) -> dict[str, Any]:
        """The scalar fields, for a CSV row or JSON."""
        return {
            "seed": self.seed,
            "reward": round(self.reward, 3),
            "laps": self.laps,
            "tiles_visited": self.tiles_visited,
            "tiles_total": self.tiles_total,
            "off_track_s": round(self.off_track_s, 3),
            "steps": self.steps,
            "sim_time_s": round(self.sim_time_s, 3),
            "terminated": self.terminated,
            "truncated": self.truncated,
            "observed": self.observed,
            "wall_s": round(self.wall_s, 3),
            "steps_per_s": round(self.steps_per_s, 1),
            **self.outcome,
        }


def run_episode(
    sim: Simulator,
    controller: Controller,
    seed: int,
    perturb: PerturbConfig | Perturber | None = None,
    max_steps: int = 1000,
    record_frames: bool = False,
) -> EpisodeResult:
    """Drive one episode of at most ``max_steps`` steps (also ends when the simulator says done)."""
    perturber = perturb if isinstance(perturb, Perturber) else Perturber(perturb)
    obs = sim.reset(seed)
    controller.reset()
    perturber.reset(seed + PERTURB_SEED_OFFSET, sim.schema.stop())
    dt_s = sim.dt_ns * 1e-9

    n = max_steps
    schema = sim.schema
    applied_values = np.zeros((n, len(schema)), np.float32)
    decided_values = np.zeros((n, len(schema)), np.float32)
    speed = np.zeros(n, np.float32)
    total_reward = np.zeros(n, np.float32)
    offset = np.zeros(n, np.float32)
    on_track = np.zeros(n, bool)
    observed = np.zeros(n, bool)
    stamps = np.zeros(n, np.int64)
    frames: list[np.ndarray] = []
    activity: list[np.ndarray | None] = []
    last_activity: np.ndarray | None = None
    view: np.ndarray | None = None

    command = schema.stop()
    steps = 0
    t0 = time.perf_counter()
    for k in range(max_steps):
        stamps[k] = obs.stamp_ns
        if not perturber.drop_frame():
            view = perturber.frame(obs.frame)
            command = controller.observe(view, obs.stamp_ns)
            observed[k] = True
            act = getattr(controller, "last_activity", None)
            if act is not None:
                last_activity = np.asarray(act, dtype=np.float32).ravel()
        if record_frames:
            frames.append(view if view is not None else obs.frame)
        activity.append(last_activity)
        applied = perturber.delay(command)
        obs = sim.step(applied)
        steps = k + 1
        decided_values[k], applied_values[k] = command.values, applied.values
        truth = obs.truth
        speed[k] = truth.speed
        total_reward[k] = truth.total_reward
        offset[k] = truth.track_offset
        on_track[k] = truth.on_track
        if obs.done:
            break
    wall = time.perf_counter() - t0

    s = slice(0, steps)
    series = {"t_s": stamps[s] * 1e-9}
    for i, name in enumerate(schema.names):
        series[name] = applied_values[s, i]
    for i, name in enumerate(schema.names):
        series[f"cmd_{name}"] = decided_values[s, i]
    series |= {
        "speed": speed[s],
        "total_reward": total_reward[s],
        "offset": offset[s],
        "on_track": on_track[s],
        "observed": observed[s],
    }
    act_array = None
    if any(a is not None for a in activity):
        width = max(len(a) for a in activity if a is not None)
        act_array = np.full((steps, width), np.nan, np.float32)
        for i, a in enumerate(activity[:steps]):
            if a is not None:
                act_array[i, : len(a)] = a
    truth = obs.truth
    return EpisodeResult(
        seed=seed,
        reward=float(truth.total_reward),
        laps=int(truth.laps_completed),
        tiles_visited=int(truth.tiles_visited),
        tiles_total=int(truth.tiles_total),
        off_track_s=float((~on_track[s]).sum() * dt_s),
        steps=steps,
        sim_time_s=steps * dt_s,
        terminated=bool(obs.terminated),
        truncated=bool(obs.truncated),
        observed=int(observed[s].sum()),
        wall_s=wall,
        series=series,
        frames=np.stack(frames) if record_frames and frames else None,
        activity=act_array,
        outcome=episode_outcome(sim, obs),
    )


def whole_episode_steps(sim: Simulator) -> int:
    """Steps that cover a whole episode: the backend's time limit (``time_limit_s``, the drone's tasks), else 1,000
    (CarRacing-v3's own limit)."""
    limit = getattr(sim, "time_limit_s", None)
    if limit is None:
        return 1000
    return int(math.ceil(limit / (sim.dt_ns * 1e-9))) + 1


def episode_outcome(sim: Simulator, obs: Any) -> dict[str, Any]:
    """The backend's figures of an episode that ended in ``obs`` (``sim.episode_outcome``), or none."""
    outcome = getattr(sim, "episode_outcome", None)
    return dict(outcome(obs)) if callable(outcome) else {}


def run_episodes(
    sim_factory: Callable[[], Simulator],
    controller_factory: Callable[[Simulator], Controller],
    seeds: Sequence[int],
    perturb: PerturbConfig | None = None,
    max_steps: int | None = 1000,
    record_frames_for: Sequence[int] | None = None,
    progress: bool = True,
) -> list[EpisodeResult]:
    """Run one episode per seed with one simulator and one controller (both reset per episode), of at most
    ``max_steps`` steps (None: :func:`whole_episode_steps`).

    ``controller_factory`` gets the simulator (the expert reads its privileged state; a learned policy ignores it).
    Frames are kept for the seeds in ``record_frames_for`` (default: the first seed).
    """
    from tqdm import tqdm

    seeds = list(seeds)
    keep = set(seeds[:1] if record_frames_for is None else record_frames_for)
    results: list[EpisodeResult] = []
    sim = sim_factory()
    try:
        max_steps = max_steps or whole_episode_steps(sim)
        controller = controller_factory(sim)
        perturber = Perturber(perturb)
        bar = tqdm(seeds, unit="ep", desc="sim-eval", disable=not progress, dynamic_ncols=True)
        for seed in bar:
            result = run_episode(sim, controller, seed, perturber, max_steps, record_frames=seed in keep)
            results.append(result)
            if "success" in result.outcome:
                bar.set_postfix(success=f"{sum(bool(r.outcome['success']) for r in results)}/{len(results)}",
                                ended_by=result.outcome.get("ended_by", ""))
            else:
                rewards = [r.reward for r in results]
                bar.set_postfix(reward=f"{result.reward:.1f}", laps=result.laps, mean=f"{np.mean(rewards):.1f}")
    finally:
        sim.close()
    return results


# -- controllers and the evaluation sim-eval runs -------------------------------------------------------------------


class DriverController:
    """The learned policy in closed loop: exactly :meth:`Driver.observe`, the drive node's path."""

    def __init__(self, driver: Driver) -> None:
        self.driver = driver

    def reset(self) -> None:  # noqa: D102
        self.driver.reset()

    def observe(self, frame: np.ndarray, stamp_ns: int) -> Command:  # noqa: D102
        return self.driver.observe(frame, stamp_ns)

    @property
    def last_activity(self) -> np.ndarray:
        """Neuron activity after the last step."""
        return self.driver.activity.copy()


def sim_driver_config(node_set: str = SIM_NODE_SET) -> DriverConfig:
    """The drive_node's settings in ``lnn-control up NODE_SET`` (``sim-drive``: drive.yaml, then sim.yaml), read
    as the node reads them."""
    from lnn_control.bringup import NODE_SETS
    from lnn_control.driver import load_driver_config

    return load_driver_config(*(config_file(name) for name in NODE_SETS[node_set].configs))


def model_controller_factory(
    path: str | Path, node_set: str = SIM_NODE_SET, backend: str = "torch"
) -> Callable[[Simulator], Controller]:
    """A factory of Drivers around the checkpoint ``path`` names (:func:`lnn_control.paths.resolve_model`), with the
    drive_node's settings of ``up NODE_SET`` (:func:`sim_driver_config`); a value that differs from the model's is
    printed as a warning; ``backend`` runs the network (:mod:`lnn_control.inference`). ModelNotFoundError or
    CheckpointError name a missing or bad checkpoint; ValueError a model whose action is not the simulator's."""
    from lnn_control.driver import Driver, warn_once
    from lnn_control.nn.checkpoint import load
    from lnn_control.paths import resolve_model

    policy = load(resolve_model(path))
    driver_config = sim_driver_config(node_set)
    warn = warn_once(lambda message: print(f"sim-eval: warning: {message}", file=sys.stderr))

    def make(sim: Simulator) -> Controller:
        if policy.config.action.names != sim.schema.names:
            raise ValueError(f"{path}: the model outputs a {policy.config.action.name} command "
                             f"({', '.join(policy.config.action.names)}), the {sim.name} simulator takes "
                             f"{sim.schema.name} commands ({', '.join(sim.schema.names)})")
        return DriverController(Driver(policy, driver_config, warn=warn, backend=backend))

    return make


def expert_controller_factory(config: ExpertConfig | None = None, seed: int = 0) -> Callable[[Simulator], Controller]:
    """A factory of demonstrators on the simulator they are given, from its privileged state: the car's expert
    (track geometry, ``config``) or the drone's (:class:`~lnn_control.sim.drone.DroneExpert`)."""

    def make(sim: Simulator) -> Controller:
        if sim.name == "drone":
            from lnn_control.sim.drone import DroneExpert

            return DroneExpert(sim, seed=seed)  # type: ignore[arg-type]
        from lnn_control.sim.expert import ExpertConfig, ExpertController

        return ExpertController(sim, config or ExpertConfig(), seed=seed)  # type: ignore[arg-type]

    return make


def sim_eval(
    controller_factory: Callable[[Simulator], Controller],
    seeds: Sequence[int],
    out: Path,
    *,
    perturb: PerturbConfig | None = None,
    spec: SimSpec | None = None,
    max_steps: int | None = None,
    gif_seconds: float = 10.0,
    progress: bool = True,
    meta: dict[str, Any] | None = None,
) -> tuple[list[EpisodeResult], dict[str, Path]]:
    """Drive episodes of the simulator ``spec`` names (default CarRacing) on ``seeds`` (:func:`run_episodes`; at most
    ``max_steps`` each, default a whole episode) and write the report folder ``out``
    (:mod:`lnn_control.report.episodes`; ``meta`` is added to its summary); the results and the report's paths."""
    from lnn_control.report.episodes import write_report

    perturb = perturb or PerturbConfig()
    spec = spec or SimSpec()
    results = run_episodes(spec.build, controller_factory, seeds, perturb, max_steps=max_steps, progress=progress)
    meta = {
        **(meta or {}),
        **spec.describe(),
        "perturb": perturb.describe(),
        "seeds": list(seeds),
        "max_steps": max_steps or "a whole episode",
    }
    return results, write_report(out, results, meta, gif_seconds=gif_seconds)

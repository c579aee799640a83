"""Speed of the MuJoCo drone backend beside bare MuJoCo, measured in one run on the same scenes.

Rows:

- ``bare mj_step``: physics steps per second of a compiled episode model, nothing else (hover controls);
- ``bare render (mujoco.Renderer)``: frames per second of MuJoCo's own renderer on that model's gimbal camera;
- ``bare render (CameraRenderer)``: the same with the backend's renderer (one GL context kept across models);
- ``DroneSim.step, hover``: camera frames per second through the backend (autopilot at every physics step, drag,
  ground truth, one render per frame);
- ``closed loop, demonstrator``: :class:`~lnn_control.sim.drone.expert.DroneExpert` flying fly-to-target episodes,
  as frames per second and as the real-time factor (sim seconds per wall second), resets included.

Ratios compare each row's cost per camera frame with a bare render plus ``steps_per_frame`` bare physics steps.
Ends with one JSON line (``real_time_factor`` is the closed loop's).

    MUJOCO_GL=egl python bench/bench_drone_sim.py [--size 96] [--frames 300] [--episodes 5] [--domain summer]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mujoco  # noqa: E402
from tqdm import tqdm  # noqa: E402

from lnn_control.command import DRONE  # noqa: E402
from lnn_control.sim.drone import DroneExpert, DroneSim, DroneSimConfig  # noqa: E402
from lnn_control.sim.drone.render import CameraRenderer  # noqa: E402


def bare_physics(model: mujoco.MjModel, steps: int, hover: float) -> float:
    """mj_step per second."""
    data = mujoco.MjData(model)
    data.ctrl[:] = hover
    if model.na:
        data.act[:] = hover
    t0 = time.perf_counter()
    for _ in range(steps):
        mujoco.mj_step(model, data)
    return steps / (time.perf_counter() - t0)


def bare_render(model: mujoco.MjModel, frames: int, size: int, own: bool) -> float:
    """Frames per second of a static render of the gimbal camera."""
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    if own:
        renderer = CameraRenderer(size, size)
        renderer.set_model(model, "gimbal", {mujoco.mjtRndFlag.mjRND_SHADOW: False})
        render = lambda: renderer.render(data)  # noqa: E731
    else:
        renderer = mujoco.Renderer(model, size, size)

        def render():
            renderer.update_scene(data, camera="gimbal")
            return renderer.render()
    render()
    t0 = time.perf_counter()
    for _ in range(frames):
        render()
    fps = frames / (time.perf_counter() - t0)
    renderer.close()
    return fps


def sim_hover(config: DroneSimConfig, frames: int, seed: int) -> float:
    """DroneSim frames per second with a hover command (reset excluded)."""
    with DroneSim(config) as sim:
        sim.reset(seed)
        t0 = time.perf_counter()
        for _ in range(frames):
            sim.step(DRONE.stop())
        return frames / (time.perf_counter() - t0)


def closed_loop(config: DroneSimConfig, episodes: int, seed: int) -> dict:
    """The demonstrator over ``episodes`` episodes: frames, sim and wall time (resets included), successes."""
    frames = 0
    sim_s = 0.0
    successes = 0
    wall = 0.0
    with DroneSim(config) as sim:
        expert = DroneExpert(sim, seed=seed)
        for k in tqdm(range(episodes), desc="closed loop", unit="ep", dynamic_ncols=True):
            t0 = time.perf_counter()
            obs = sim.reset(seed + k)
            expert.reset()
            while not obs.done:
                obs = sim.step(expert.observe(obs.frame, obs.stamp_ns))
                frames += 1
            wall += time.perf_counter() - t0
            sim_s += obs.stamp_ns * 1e-9
            successes += bool(obs.truth.success)
    return {"frames": frames, "sim_s": sim_s, "wall_s": wall, "successes": successes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=96, help="square frame size, px")
    parser.add_argument("--frames", type=int, default=300, help="frames per rendering row")
    parser.add_argument("--episodes", type=int, default=5, help="closed-loop episodes")
    parser.add_argument("--domain", default="summer")
    parser.add_argument("--task", default="fly-to-target")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    config = DroneSimConfig(frame_size=(args.size, args.size), domain=args.domain, task=args.task)
    with DroneSim(DroneSimConfig(frame_size=config.frame_size, domain=args.domain, task=args.task,
                                 render=False)) as probe:
        probe.reset(args.seed)
        model = probe.model
        hover = config.airframe.hover_thrust
        n_obstacles = len(probe.scene.obstacles)
    print(f"cpu_count {os.cpu_count()}  frame {args.size}x{args.size}  domain {args.domain}  task {args.task}  "
          f"obstacles {n_obstacles}  geoms {model.ngeom}  steps/frame {config.steps_per_frame}  "
          f"dt {config.physics_dt_ns / 1e6:g} ms")

    physics = bare_physics(model, 20000, hover)
    render_mj = bare_render(model, args.frames, args.size, own=False)
    render_own = bare_render(model, args.frames, args.size, own=True)
    hover_fps = sim_hover(config, args.frames, args.seed)
    loop = closed_loop(config, args.episodes, args.seed)

    loop_fps = loop["frames"] / loop["wall_s"]
    rtf = loop["sim_s"] / loop["wall_s"]
    bare_frame_s = 1.0 / render_own + config.steps_per_frame / physics
    rows = [
        ("bare mj_step", f"{physics:,.0f} steps/s", ""),
        ("bare render (mujoco.Renderer)", f"{render_mj:,.1f} fps", ""),
        ("bare render (CameraRenderer)", f"{render_own:,.1f} fps", ""),
        ("bare render + steps/frame physics", f"{1.0 / bare_frame_s:,.1f} fps", "1.00x"),
        ("DroneSim.step, hover", f"{hover_fps:,.1f} fps", f"{(1.0 / hover_fps) / bare_frame_s:.2f}x"),
        ("closed loop, demonstrator", f"{loop_fps:,.1f} fps", f"{(1.0 / loop_fps) / bare_frame_s:.2f}x"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'row':<{width}}  {'rate':>16}  cost/frame vs bare")
    for name, rate, ratio in rows:
        print(f"{name:<{width}}  {rate:>16}  {ratio}")
    print(f"closed loop: {loop['sim_s']:.1f} sim s in {loop['wall_s']:.1f} wall s over {args.episodes} episodes "
          f"({loop['successes']} successes): real-time factor {rtf:.2f}x (target >= 3x)")
    print(json.dumps({
        "cpu_count": os.cpu_count(),
        "frame_size": args.size,
        "domain": args.domain,
        "task": args.task,
        "bare_physics_steps_per_s": round(physics, 1),
        "bare_render_fps_mujoco_renderer": round(render_mj, 2),
        "bare_render_fps": round(render_own, 2),
        "sim_hover_fps": round(hover_fps, 2),
        "closed_loop_fps": round(loop_fps, 2),
        "closed_loop_cost_vs_bare": round((1.0 / loop_fps) / bare_frame_s, 3),
        "episodes": args.episodes,
        "successes": loop["successes"],
        "real_time_factor": round(rtf, 3),
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

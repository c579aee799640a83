"""A camera quadrotor in a seeded MuJoCo forest behind the :class:`~lnn_control.sim.base.Simulator` interface.

- **Command**: :data:`~lnn_control.command.DRONE` (``vx, vy, vz`` m/s in the heading frame, FLU; ``yaw_rate`` rad/s
  counter-clockwise), held for one camera frame (zero-order hold) while the autopilot
  (:class:`~lnn_control.sim.drone.flight.FlightController`) runs at every physics step.
- **Time**: one :meth:`DroneSim.step` = one camera frame = ``steps_per_frame`` physics steps of ``physics_dt_ns``
  (default 14 x 5 ms = 70 ms, about 14.3 Hz); the frame is rendered once, after the last physics step.
- **Scenes**: :func:`~lnn_control.sim.drone.scene.generate_scene` from the seed and the task; the domain only
  restyles them. A new model is compiled per reset.
- **Bad commands** (NaN, inf, another schema, out of range) never raise: :func:`~lnn_control.sim.base.sanitize_command`
  replaces them with hover (the stop command) or clamps them, with a rate-limited warning.
- **Privileged state** for demonstrators: :attr:`DroneSim.state` (:class:`~lnn_control.sim.drone.state.DroneState`),
  :attr:`DroneSim.scene` and :attr:`DroneSim.last_observation`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import mujoco
import numpy as np

from lnn_control.command import DRONE, Command
from lnn_control.sim.base import Observation, RateLimitedLog, sanitize_command
from lnn_control.sim.drone.airframe import Airframe
from lnn_control.sim.drone.domains import domain_style
from lnn_control.sim.drone.flight import FlightController, FlightGains, FlightState
from lnn_control.sim.drone.model import build_model
from lnn_control.sim.drone.render import CameraRenderer
from lnn_control.sim.drone.scene import DISTRACTOR_RADIUS, ForestParams, Scene, generate_scene
from lnn_control.sim.drone.state import DroneState, DroneTruth
from lnn_control.sim.drone.tasks import TaskJudge, TaskSpec, target_view, task_spec

LOG = logging.getLogger(__name__)

@dataclass
class DroneSimConfig:
    """Options of :class:`DroneSim`."""

    frame_size: tuple[int, int] = (96, 96)
    """``(height, width)`` of the camera frames."""
    task: str = "fly-to-target"
    """``fly-to-target``, ``range``, ``hike`` or ``track`` (:data:`~lnn_control.sim.drone.tasks.TASKS`)."""
    domain: str = "summer"
    """``summer``, ``fall``, ``winter``, ``urban``, ``dusk``, ``fog`` or ``distractor``, or a mix of them
    (``summer+fall.ground``: :func:`~lnn_control.sim.drone.domains.domain_style`)."""
    steps_per_frame: int = 14
    """Physics steps per camera frame (and per command)."""
    physics_dt_ns: int = 5_000_000
    """Physics and autopilot step, ns."""
    time_limit_s: float | None = None
    """Episode time limit, s; None: the task's."""
    gimbal: bool = True
    """Render the level, yaw-following ``gimbal`` camera; False: the ``fpv`` camera fixed to the body."""
    render: bool = True
    """False: frames are black (for flight tests and label checks that need no pixels)."""
    shadows: bool = False
    """Sun shadows (costly with a software renderer)."""
    command_bounds: dict[str, tuple[float, float]] | None = None
    """Per-field clamp of commands; None: the schema's hard bounds."""
    airframe: Airframe = field(default_factory=Airframe)
    gains: FlightGains = field(default_factory=FlightGains)
    forest: ForestParams = field(default_factory=ForestParams)
    min_altitude: float = 0.0
    """Below this the drone counts as out of the area (the ground itself is a collision), m."""

    def __post_init__(self) -> None:
        if self.steps_per_frame < 1 or self.physics_dt_ns < 1:
            raise ValueError("steps_per_frame and physics_dt_ns must be positive")
        task_spec(self.task)
        domain_style(self.domain)


def _euler_zyx(rot: np.ndarray) -> tuple[float, float, float]:
    pitch = math.asin(max(-1.0, min(1.0, -float(rot[2, 0]))))
    return math.atan2(float(rot[2, 1]), float(rot[2, 2])), pitch, math.atan2(float(rot[1, 0]), float(rot[0, 0]))


class DroneSim:
    """The drone backend: a :class:`~lnn_control.sim.base.Simulator` with privileged state."""

    name = "drone"
    schema = DRONE

    def __init__(self, config: DroneSimConfig | None = None):
        self.config = config or DroneSimConfig()
        c = self.config
        self.task: TaskSpec = task_spec(c.task)
        self.style = domain_style(c.domain)
        self.controller = FlightController(c.airframe, c.gains)
        self._warn = RateLimitedLog(LOG)
        self._renderer: CameraRenderer | None = None
        self._model: mujoco.MjModel | None = None
        self._data: mujoco.MjData | None = None
        self._scene: Scene | None = None
        self._judge: TaskJudge | None = None
        self._last_obs: Observation | None = None
        self._rot = np.zeros(9)
        self._command = np.zeros(4)
        self.bad_commands = 0
        """Commands replaced or clamped since construction."""
        self.last_command: Command = DRONE.stop()
        """The command applied in the latest step (after sanitising)."""

    # -- Simulator properties -------------------------------------------------------------------------------------
    @property
    def frame_size(self) -> tuple[int, int]:
        return self.config.frame_size

    @property
    def dt_ns(self) -> int:
        return self.config.steps_per_frame * self.config.physics_dt_ns

    @property
    def time_limit_s(self) -> float:
        """The episode's time limit, s."""
        return self.config.time_limit_s if self.config.time_limit_s is not None else self.task.time_limit_s

    @property
    def scene(self) -> Scene:
        """The current episode's geometry."""
        if self._scene is None:
            raise RuntimeError("call reset() before reading the scene")
        return self._scene

    @property
    def model(self) -> mujoco.MjModel:
        """The compiled MuJoCo model of the current episode (privileged; tests and tools)."""
        if self._model is None:
            raise RuntimeError("call reset() first")
        return self._model

    @property
    def data(self) -> mujoco.MjData:
        """The MuJoCo data of the current episode (privileged)."""
        if self._data is None:
            raise RuntimeError("call reset() first")
        return self._data

    @property
    def last_observation(self) -> Observation | None:
        return self._last_obs

    # -- episode ----------------------------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> Observation:
        c = self.config
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
        self._scene = scene = generate_scene(seed, self.task, c.forest)
        self._model = model = build_model(scene, self.style, c.airframe, c.physics_dt_ns * 1e-9, c.frame_size,
                                          c.shadows)
        self._data = data = mujoco.MjData(model)
        self._drone = model.body("drone").id
        self._drone_geom = model.geom("drone_collision").id
        self.last_contact: str | None = None
        """Name of the geom the drone touched first in the latest step that had a contact."""
        self._target_mocap = int(model.body_mocapid[model.body("target").id])
        self._rig_mocap = int(model.body_mocapid[model.body("camera_rig").id])
        if model.nu and model.na:
            data.act[:] = c.airframe.hover_thrust
        data.ctrl[:] = c.airframe.hover_thrust
        self._obstacles = self._obstacle_array(scene)
        self.controller.reset(scene.start_yaw)
        self._judge = TaskJudge(self.task, len(scene.targets), scene.path_duration_s)
        self._frame_index = 0
        self._total = 0.0
        self._collided = False
        self._ended: str | None = None
        self._target_velocity = np.zeros(3)
        self._place_target(0.0)
        self._update_rig()
        mujoco.mj_forward(model, data)
        if c.render:
            if self._renderer is None:
                self._renderer = CameraRenderer(*c.frame_size)
            flags = {mujoco.mjtRndFlag.mjRND_FOG: self.style.fog is not None,
                     mujoco.mjtRndFlag.mjRND_SHADOW: c.shadows,
                     mujoco.mjtRndFlag.mjRND_REFLECTION: False}
            self._renderer.set_model(model, "gimbal" if c.gimbal else "fpv", flags)
        self.last_command = DRONE.stop()
        self._prev_distance = self._view().distance
        self._last_obs = self._observe(0.0, {"event": None})
        return self._last_obs

    def step(self, command: Command) -> Observation:
        if self._data is None or self._judge is None:
            raise RuntimeError("call reset() before step()")
        safe, problem = sanitize_command(command, DRONE, self.config.command_bounds)
        info: dict = {"event": None}
        if problem is not None:
            self.bad_commands += 1
            info["bad_command"] = problem
            self._warn.warning("bad_command", f"{self.name}: {problem}")
        self.last_command = safe
        self._command[:] = safe.values
        collided_now = self._advance()
        self._frame_index += 1
        t_s = self._frame_index * self.dt_ns * 1e-9
        self._update_rig()
        mujoco.mj_forward(self._model, self._data)
        info.update(self._judge_frame(collided_now, t_s))
        view = self._view()
        reward = self._prev_distance - view.distance
        reward += 10.0 if info.get("event") == "success" else 0.0
        reward -= 10.0 if collided_now else 0.0
        self._prev_distance = view.distance
        self._total += reward
        self._last_obs = self._observe(reward, info)
        return self._last_obs

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def __enter__(self) -> DroneSim:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- privileged state -------------------------------------------------------------------------------------------
    def episode_outcome(self, obs: Observation) -> dict[str, Any]:
        """The task's figures of an episode that ended in ``obs`` (closed-loop reports, sim-eval)."""
        truth = obs.truth
        assert isinstance(truth, DroneTruth)
        return {
            "success": bool(truth.success),
            "collided": bool(truth.collided),
            "time_to_target_s": round(truth.time_to_target, 3),
            "final_distance_m": round(truth.target_distance, 3),
            "ended_by": obs.info.get("event") or ("time_limit" if obs.truncated else ""),
        }

    def episode_info(self) -> dict[str, Any]:
        """What a demonstrator across a process boundary needs of this episode beyond each frame's truth (sim_node's
        ``sim/episode`` start event): the task and the obstacles' footprints."""
        return {
            "task": self.task.name,
            "domain": self.config.domain,
            "obstacles": [[round(float(v), 4) for v in row] for row in self._obstacles],
        }

    @property
    def state(self) -> DroneState:
        """The privileged state now."""
        data = self.data
        rot = self._rotation()
        return DroneState(
            time_s=self._frame_index * self.dt_ns * 1e-9,
            position=data.qpos[0:3].copy(),
            velocity=data.qvel[0:3].copy(),
            yaw=math.atan2(rot[1, 0], rot[0, 0]),
            yaw_rate=float((rot @ data.qvel[3:6])[2]),
            target=data.mocap_pos[self._target_mocap].copy(),
            target_velocity=self._target_velocity.copy(),
            obstacles=self._obstacles,
            task=self.task,
            scene=self.scene,
        )

    # -- internals --------------------------------------------------------------------------------------------------
    def _obstacle_array(self, scene: Scene) -> np.ndarray:
        obs = scene.obstacle_array()
        if self.style.urban and len(obs):
            obs[:, 2] *= math.sqrt(2.0)  # the circle around a square of half-width r
        if self.style.distractor:
            obs = np.vstack([obs, [[scene.distractor[0], scene.distractor[1], DISTRACTOR_RADIUS]]])
        obs.setflags(write=False)
        return obs

    def _rotation(self) -> np.ndarray:
        mujoco.mju_quat2Mat(self._rot, self._data.qpos[3:7])
        return self._rot.reshape(3, 3).copy()

    def _place_target(self, t_s: float) -> None:
        scene = self.scene
        if self.task.moving:
            pos, vel = scene.target_at(t_s)
            self._target_velocity = vel
        else:
            index = min(self._judge.target_index if self._judge else 0, len(scene.targets) - 1)
            pos = np.asarray(scene.targets[index])
        self._data.mocap_pos[self._target_mocap] = pos

    def _update_rig(self) -> None:
        data = self._data
        rot = self._rotation()
        yaw = math.atan2(rot[1, 0], rot[0, 0])
        data.mocap_pos[self._rig_mocap] = data.qpos[0:3]
        data.mocap_quat[self._rig_mocap] = (math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2))

    def _advance(self) -> bool:
        """Run one frame's physics steps; True if the drone touched something."""
        c = self.config
        model, data = self._model, self._data
        dt = c.physics_dt_ns * 1e-9
        drag = np.asarray(c.airframe.drag)
        angular_drag = c.airframe.angular_drag
        xfrc = data.xfrc_applied[self._drone]
        t0 = self._frame_index * self.dt_ns * 1e-9
        touched = False
        for k in range(c.steps_per_frame):
            rot = self._rotation()
            velocity = data.qvel[0:3]
            omega = data.qvel[3:6]
            data.ctrl[:] = self.controller.update(self._command, FlightState(velocity, rot, omega), dt)
            xfrc[0:3] = -(rot @ (drag * (rot.T @ velocity)))
            xfrc[3:6] = -angular_drag * (rot @ omega)
            if self.task.moving:
                self._place_target(t0 + k * dt)
            mujoco.mj_step(model, data)
            if data.ncon > 0 and not touched:
                touched = True
                contact = data.contact[0]
                other = contact.geom2 if contact.geom1 == self._drone_geom else contact.geom1
                self.last_contact = model.geom(int(other)).name
        if self.task.moving:
            self._place_target(t0 + c.steps_per_frame * dt)
        return touched

    def _view(self):
        data = self._data
        rot = self._rotation()
        return target_view(tuple(data.qpos[0:3]), math.atan2(rot[1, 0], rot[0, 0]),
                           tuple(data.mocap_pos[self._target_mocap]))

    def _judge_frame(self, collided_now: bool, t_s: float) -> dict:
        """Events of this frame; sets ``_ended`` when the episode terminates."""
        info: dict = {}
        if self._ended is not None:
            info["event"] = None
            return info
        if collided_now:
            self._collided = True
            self._ended = "collision"
            info["contact"] = self.last_contact
        elif not self.scene.in_bounds(self._data.qpos[0:3]) or self._data.qpos[2] < self.config.min_altitude:
            self._ended = "out_of_bounds"
        else:
            verdict = self._judge.update(self._view(), self.dt_ns * 1e-9, t_s)
            if verdict.target_reached:
                info["target_reached"] = True
                if not verdict.success:
                    self._place_target(t_s)
                    mujoco.mj_forward(self._model, self._data)
            if verdict.success:
                self._ended = "success"
            elif verdict.failure is not None:
                self._ended = verdict.failure
        if self._ended is not None:
            info["event"] = self._ended
        elif t_s >= self.time_limit_s - 1e-9:
            info["event"] = "time_limit"
        return info

    def _observe(self, reward: float, info: dict) -> Observation:
        data = self._data
        rot = self._rotation()
        roll, pitch, yaw = _euler_zyx(rot)
        c, s = math.cos(yaw), math.sin(yaw)
        v = data.qvel[0:3]
        body_v = (c * v[0] + s * v[1], -s * v[0] + c * v[1], float(v[2]))
        view = self._view()
        judge = self._judge
        success = self._ended == "success"
        t_s = self._frame_index * self.dt_ns * 1e-9
        truth = DroneTruth(
            speed=float(body_v[0]),
            reward=float(reward),
            total_reward=float(self._total),
            position=(float(data.qpos[0]), float(data.qpos[1])),
            heading=yaw,
            yaw_rate=float((rot @ data.qvel[3:6])[2]),
            position_3d=tuple(float(p) for p in data.qpos[0:3]),
            attitude=(roll, pitch, yaw),
            body_velocity=tuple(float(b) for b in body_v),
            target_position=tuple(float(p) for p in data.mocap_pos[self._target_mocap]),
            target_distance=view.distance,
            target_bearing=view.bearing,
            target_elevation=view.elevation,
            target_index=judge.target_index,
            collided=self._collided,
            success=success,
            time_to_target=judge.time_to_target_s if success else math.nan,
        )
        terminated = self._ended is not None
        truncated = not terminated and t_s >= self.time_limit_s - 1e-9
        info.update(collided=self._collided, success=success, target_index=judge.target_index)
        if self.task.moving:
            info["tracked_fraction"] = judge.tracked_fraction
        if self.config.render and self._renderer is not None:
            frame = self._renderer.render(data)
        else:
            frame = np.zeros((*self.config.frame_size, 3), np.uint8)
        return Observation(frame=frame, stamp_ns=self._frame_index * self.dt_ns, truth=truth,
                           terminated=terminated, truncated=truncated, info=info)

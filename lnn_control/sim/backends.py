"""The simulator backends by name, for the closed loop and ``sim-eval``: how to build one, its demonstrator, and
the node set whose driving node's settings a learned policy runs with there.

- ``carracing``: :class:`~lnn_control.sim.carracing.CarRacingSim` (the car; ``domain`` ``default`` or ``randomize``,
  CarRacing's own random colours per reset), demonstrator :class:`~lnn_control.sim.expert.ExpertController`, node
  set ``sim-drive``;
- ``drone``: :class:`~lnn_control.sim.drone.DroneSim` (a camera quadrotor in MuJoCo; ``task`` and ``domain``),
  demonstrator :class:`~lnn_control.sim.drone.DroneExpert`, node set ``drone-sim-drive``.

Each backend's module is imported only when it is built (gymnasium for the car, mujoco for the drone).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lnn_control.sim.base import Simulator

BACKENDS = ("carracing", "drone")
#: The node set whose driving node (drive_node) a learned policy drives as, per backend.
NODE_SETS = {"carracing": "sim-drive", "drone": "drone-sim-drive"}
#: The car's domains: CarRacing's own colours, or its ``domain_randomize`` (new background, grass and road colours
#: at every reset, drawn from the episode's seed).
CAR_DOMAINS = ("default", "randomize")


@dataclass(frozen=True)
class SimSpec:
    """Which simulator, and the options the backends take (``task``: the drone's only; ``domain``: both)."""

    backend: str = "carracing"
    frame_size: tuple[int, int] = (96, 96)
    task: str | None = None
    domain: str | None = None

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown simulator {self.backend!r} (known: {', '.join(BACKENDS)})")
        if self.backend == "carracing":
            if self.task:
                raise ValueError("task is the drone's; the carracing simulator has none")
            if self.domain is not None and self.domain not in CAR_DOMAINS:
                raise ValueError(f"unknown carracing domain {self.domain!r} (known: {', '.join(CAR_DOMAINS)})")
        if self.backend == "drone":
            from lnn_control.sim.drone import TASKS
            from lnn_control.sim.drone.domains import domain_style

            if self.task is not None and self.task not in TASKS:
                raise ValueError(f"unknown task {self.task!r} (known: {', '.join(TASKS)})")
            if self.domain is not None:
                domain_style(self.domain)

    @property
    def node_set(self) -> str:
        """The node set whose drive_node settings a learned policy runs with in this simulator."""
        return NODE_SETS[self.backend]

    def build(self) -> Simulator:
        """A new simulator of this spec."""
        if self.backend == "drone":
            from lnn_control.sim.drone import DroneSim, DroneSimConfig

            options = {k: v for k, v in (("task", self.task), ("domain", self.domain)) if v is not None}
            return DroneSim(DroneSimConfig(frame_size=self.frame_size, **options))
        from lnn_control.sim.carracing import CarRacingConfig, CarRacingSim

        return CarRacingSim(CarRacingConfig(frame_size=self.frame_size, domain_randomize=self.domain == "randomize"))

    def describe(self) -> dict[str, Any]:
        """For a report's metadata."""
        out: dict[str, Any] = {"simulator": self.backend, "frame_size": list(self.frame_size)}
        if self.backend == "drone":
            from lnn_control.sim.drone import DroneSimConfig

            out["task"] = self.task or DroneSimConfig.task
            out["domain"] = self.domain or DroneSimConfig.domain
        else:
            out["domain"] = self.domain or CAR_DOMAINS[0]
        return out

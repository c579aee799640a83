"""Parameters shared by perception_node, policy_node and drive_node, and the :class:`Driver` they build from them.

The three nodes declare their parameters from the tables below, so the fused and the split layout take the same
names, defaults, descriptions and ranges (``config/drive.yaml`` lists them all). Defaults come from the config
dataclasses (:class:`~lnn_control.driver.TimingConfig`, :class:`~lnn_control.driver.LimitsConfig`,
:data:`~lnn_control.vision.DEFAULT_MAX_PIXELS`), never from a second copy here.

``model`` names a checkpoint (``path/to/stem``, ``stem.json`` or ``stem.safetensors``; a bare name is also looked up
in the package's ``models/`` folder). Empty means the model shipped in ``models/``. ``random:<core>:<seed>`` (for
example ``random:ltc:0``) builds an *untrained* policy of that core, deterministically from the seed: for tests and
demos of the plumbing only, it does not drive.

The limits, timing and watchdog parameters may be changed at run time (``ros2 param set``); a change that makes an
invalid configuration is refused with the reason. The others are read-only once the node runs.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rclpy
import torch
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

from lnn_control.driver import Driver, DriverConfig, LimitsConfig, TimingConfig
from lnn_control.nn.checkpoint import load
from lnn_control.nn.policy import CORES, Policy, PolicyConfig
from lnn_control.paths import model_file
from lnn_control.vision import DEFAULT_MAX_PIXELS, PreprocessConfig

RANDOM_PREFIX = "random:"
_TIMING = TimingConfig()
_LIMITS = LimitsConfig()


class ParameterError(ValueError):
    """A parameter value the node cannot start with; the message names the parameter and how to fix it."""


@dataclass(frozen=True)
class Param:
    """One declared parameter: name, default (its type is the parameter's type), description, range or choices."""

    name: str
    default: Any
    description: str
    range: tuple[float, float] | None = None
    choices: tuple[str, ...] = ()
    read_only: bool = True

    def descriptor(self) -> ParameterDescriptor:
        """The rcl_interfaces descriptor ``ros2 param describe`` shows."""
        descriptor = ParameterDescriptor(description=self.description, read_only=self.read_only)
        if self.range is not None and isinstance(self.default, float):
            descriptor.floating_point_range = [
                FloatingPointRange(from_value=float(self.range[0]), to_value=float(self.range[1]), step=0.0)
            ]
        elif self.range is not None:
            descriptor.integer_range = [
                IntegerRange(from_value=int(self.range[0]), to_value=int(self.range[1]), step=1)
            ]
        if self.choices:
            descriptor.additional_constraints = f"one of: {', '.join(self.choices)}"
        return descriptor


#: Every node that runs the policy: which model, how many torch threads.
MODEL_PARAMETERS: tuple[Param, ...] = (
    Param(
        "model",
        "",
        "checkpoint path (stem, .json or .safetensors; a bare name is also looked up in the package's models/); "
        "empty: the model shipped in models/; 'random:<core>:<seed>': an untrained policy, for tests and demos only",
    ),
    Param(
        "threads",
        1,
        "torch intra-op threads for the network (1 is fastest on a small computer whose other cores are busy)",
        (1, 256),
    ),
)

#: Nodes that subscribe the camera (perception_node, drive_node).
CAMERA_PARAMETERS: tuple[Param, ...] = (
    Param(
        "image_transport",
        "raw",
        "raw: sensor_msgs/Image on camera/image_raw; compressed: sensor_msgs/CompressedImage (jpeg, png) on "
        "camera/image_raw/compressed",
        choices=("raw", "compressed"),
    ),
    Param(
        "max_pixels",
        DEFAULT_MAX_PIXELS,
        "frames with more pixels (width x height) are dropped undecoded",
        (1, 2**31 - 1),
    ),
    *(
        Param(
            f"crop_{side}",
            -1,
            f"pixels cropped from the {side} of the decoded frame before resizing; -1: the model's own setting",
            (-1, 100_000),
        )
        for side in ("top", "bottom", "left", "right")
    ),
)

#: Nodes that publish commands (policy_node, drive_node).
COMMAND_PARAMETERS: tuple[Param, ...] = (
    Param("stamped", False, "publish geometry_msgs/TwistStamped (header stamp = the camera stamp) instead of Twist"),
    Param("frame_id", "base_link", "header frame_id of TwistStamped commands"),
    Param("enabled", True, "start enabled; when disabled (service ~/enable) the node publishes zero velocity"),
    Param(
        "timeout",
        0.2,
        "watchdog: seconds (node clock) without input before publishing zero velocity",
        (0.001, 60.0),
        read_only=False,
    ),
    Param(
        "watchdog_rate", 20.0, "Hz at which the watchdog checks, and repeats zero velocity while stopped", (0.1, 1000.0)
    ),
    Param("max_speed", _LIMITS.max_speed, "largest commanded velocity, m/s", (0.0, 100.0), read_only=False),
    Param(
        "min_speed",
        _LIMITS.min_speed,
        "smallest commanded velocity, m/s (negative allows reversing)",
        (-100.0, 100.0),
        read_only=False,
    ),
    Param(
        "max_steering",
        _LIMITS.max_steering,
        "largest |steering|, normalised (+1 = full left)",
        (0.0, 1.0),
        read_only=False,
    ),
    Param(
        "max_steering_rate",
        _LIMITS.max_steering_rate,
        "largest steering change per second of camera time, normalised units/s; 0 disables",
        (0.0, 1000.0),
        read_only=False,
    ),
    Param(
        "nominal_dt",
        _TIMING.nominal_dt_s,
        "dt (s) of the first frame and the first after a reset",
        (1e-4, 10.0),
        read_only=False,
    ),
    Param(
        "min_dt",
        _TIMING.min_dt_s,
        "dt (s) between camera stamps is clamped to at least this",
        (1e-4, 10.0),
        read_only=False,
    ),
    Param(
        "max_dt",
        _TIMING.max_dt_s,
        "dt (s) between camera stamps is clamped to at most this",
        (1e-4, 10.0),
        read_only=False,
    ),
    Param(
        "reset_gap",
        _TIMING.reset_gap_s,
        "a gap between camera stamps longer than this (s) resets the state (so does time going backwards)",
        (1e-3, 3600.0),
        read_only=False,
    ),
)

#: Parameters each node declares (use_sim_time comes with every rclpy node).
NODE_PARAMETERS: dict[str, tuple[Param, ...]] = {
    "perception_node": MODEL_PARAMETERS + CAMERA_PARAMETERS,
    "policy_node": MODEL_PARAMETERS + COMMAND_PARAMETERS,
    "drive_node": MODEL_PARAMETERS + CAMERA_PARAMETERS + COMMAND_PARAMETERS,
}


def declare(node: Node, params: Sequence[Param]) -> dict[str, Any]:
    """Declare ``params`` on ``node`` and return their values (overrides from YAML or the command line applied)."""
    node.declare_parameters("", [(p.name, p.default, p.descriptor()) for p in params])
    values = {p.name: node.get_parameter(p.name).value for p in params}
    for p in params:
        if p.choices and values[p.name] not in p.choices:
            raise ParameterError(f"parameter {p.name!r} is {values[p.name]!r}; choose one of {', '.join(p.choices)}")
    return values


# -- what the parameters build ----------------------------------------------------------------------------------------


def driver_config(values: dict[str, Any]) -> DriverConfig:
    """Timing and limits from parameter values (raises ``ValueError`` with the dataclass's reason when invalid)."""
    return DriverConfig(
        timing=TimingConfig(
            nominal_dt_s=values["nominal_dt"],
            min_dt_s=values["min_dt"],
            max_dt_s=values["max_dt"],
            reset_gap_s=values["reset_gap"],
        ),
        limits=LimitsConfig(
            max_speed=values["max_speed"],
            min_speed=values["min_speed"],
            max_steering=values["max_steering"],
            max_steering_rate=values["max_steering_rate"],
        ),
    )


def preprocess_config(values: dict[str, Any], base: PreprocessConfig) -> PreprocessConfig:
    """The model's crop, with the ``crop_*`` parameters that are not -1 put in its place."""
    crops = {f"crop_{s}": values[f"crop_{s}"] for s in ("top", "bottom", "left", "right") if values[f"crop_{s}"] >= 0}
    return dataclasses.replace(base, **crops)


def shipped_model() -> Path:
    """The checkpoint shipped in ``models/`` (exactly one, or one named ``default``)."""
    folder = model_file("")
    found = sorted(p.with_suffix("") for p in folder.glob("*.json")) if folder.is_dir() else []
    chosen = [p for p in found if p.name == "default"] or found
    if len(chosen) == 1:
        return chosen[0]
    how = (
        "pass one with the parameter 'model' (ros2 run lnn_control drive_node --ros-args -p model:=/path/to/stem, "
        "or lnn-control up drive --set drive_node.model=/path/to/stem), or 'random:ltc:0' for an untrained demo"
    )
    if not chosen:
        raise ParameterError(f"no model is shipped in {folder}: {how}")
    raise ParameterError(
        f"several models in {folder} ({', '.join(p.name for p in chosen)}) and none is 'default': {how}"
    )


def load_policy(spec: str) -> Policy:
    """The policy named by the ``model`` parameter (see the module docstring)."""
    if spec.startswith(RANDOM_PREFIX):
        parts = spec[len(RANDOM_PREFIX) :].split(":")
        if len(parts) != 2 or parts[0] not in CORES or not re.fullmatch(r"-?\d+", parts[1]):
            raise ParameterError(
                f"parameter 'model' is {spec!r}: expected 'random:<core>:<seed>' with core one of {', '.join(CORES)}"
            )
        return Policy(PolicyConfig(core=parts[0], seed=int(parts[1]))).eval()
    path = Path(spec).expanduser() if spec else shipped_model()
    if spec and not _exists(path) and _exists(model_file(spec)):
        path = model_file(spec)
    try:
        return load(path)
    except ValueError as exc:  # CheckpointError names the file and the problem
        raise ParameterError(f"parameter 'model' ({spec or path}): {exc}") from exc


def _exists(path: Path) -> bool:
    stem = path.with_suffix("") if path.suffix in (".json", ".safetensors") else path
    return stem.with_name(stem.name + ".json").is_file()


def build_driver(node: Node, values: dict[str, Any]) -> Driver:
    """Set torch's threads, load the policy and make the node's :class:`Driver` from its parameter values."""
    torch.set_num_threads(int(values["threads"]))
    policy = load_policy(values["model"])
    config = driver_config(values) if "max_speed" in values else None
    try:
        driver = Driver(policy, config)
    except ValueError as exc:
        raise ParameterError(f"invalid timing or limits: {exc}") from exc
    if "crop_top" in values:
        driver.preprocess = preprocess_config(values, driver.preprocess)
    pre = driver.preprocess
    node.get_logger().info(
        f"model {values['model'] or 'shipped'}: {policy.config.core}, {policy.config.features} features, "
        f"input {pre.width}x{pre.height} after crop t{pre.crop_top} b{pre.crop_bottom} l{pre.crop_left} "
        f"r{pre.crop_right}; {values['threads']} torch thread(s)"
    )
    return driver


def on_set_driver_parameters(node: Node, values: dict[str, Any], apply: Any) -> None:
    """Accept run-time changes of the limits, timing and watchdog when the result is valid; ``apply(values)`` them."""

    def callback(changes: list) -> SetParametersResult:
        updated = dict(values)
        updated.update({p.name: p.value for p in changes if p.name in values})
        try:
            driver_config(updated)
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        values.update(updated)
        apply(values)
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(callback)


class Throttle:
    """At most one message per ``period_s`` per kind of problem (numbers in the text do not make a new kind).

    rclpy's own ``throttle_duration_sec`` throttles per call site, which would hide a second, different problem
    arriving right after the first; this keys on the message with its digits blanked out.
    """

    def __init__(self, period_s: float = 5.0) -> None:
        self.period_ns = int(period_s * 1e9)
        self._last: dict[str, int] = {}

    def ready(self, message: str) -> bool:
        """True if a message of this kind may be logged now (steady clock, so paused sim time does not mute it)."""
        key = re.sub(r"\d+", "#", message)
        now = time.monotonic_ns()
        last = self._last.get(key)
        if last is not None and now - last < self.period_ns:
            return False
        self._last[key] = now
        return True


def log_summary(node: Node, text: str) -> None:
    """Log ``text`` at shutdown: to rosout while the context lives, else (after Ctrl-C or SIGTERM) to stderr only."""
    if node.context.ok():
        node.get_logger().info(text)
    else:
        print(f"[{node.get_name()}] {text}", file=sys.stderr)


def run_node(factory: Callable[[], Node], args: list[str] | None = None) -> int:
    """A node's ``main``: init, build, spin until Ctrl-C or shutdown. A configuration error exits 2 with its message."""
    rclpy.init(args=args)
    try:
        node = factory()
    except (ParameterError, ParameterException) as exc:
        print(f"error: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0

"""Parameters shared by perception_node, policy_node and drive_node, and the :class:`Driver` they build from them.

The three nodes declare their parameters from the dataclasses below with
:func:`lnn_control.ros.node_util.declare_config`, so the fused and the split layout take the same names, defaults,
descriptions and ranges (``config/drive.yaml`` lists them all; a test holds the two together). The timing, crop and
limit parameters are the fields of :class:`~lnn_control.driver.DriverConfig` itself (its groups
:class:`~lnn_control.driver.TimingOverrides` and :class:`~lnn_control.driver.CropOverrides` are bases of the
parameter groups here; its ``limits`` are the ``limits.*`` parameters), so a node, ``eval`` / ``replay-diff
--driver-config`` and ``sim-eval`` read the same names from the same YAML, with no table between them.
Timing 0 and crop -1 mean the model's own (the checkpoint's ``timing`` and ``preprocess``); another value is used
and logged as a warning naming it.

``model`` names a checkpoint (``path/to/stem``, ``stem.json`` or ``stem.safetensors``; a bare name is also looked up
in the package's ``models/`` folder). Empty means the model shipped in ``models/``. ``random:<core>:<seed>`` (for
example ``random:ltc:0``, or ``random:ltc:0:drone`` for the drone's action) builds an *untrained* policy of that
core, deterministically from the seed: for tests and demos of the plumbing only, it does not drive.

The limits are declared once the model is loaded, one set per field of its action (``limits.<field>.min``,
``.max``, ``.max_rate``; the car: ``limits.steering.*``, ``limits.velocity.*``), with the schema's own limits as
defaults (``ros2 param describe`` shows their units and bounds).

The limits, timing and watchdog parameters may be changed at run time (``ros2 param set``); a change that makes an
invalid configuration is refused with the reason. The others are read-only once the node runs.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from dataclasses import dataclass
from typing import Any

import torch
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node

from lnn_control.command import CAR, SCHEMAS, ActionSchema
from lnn_control.driver import (
    LIMITS_PREFIX,
    CropOverrides,
    Driver,
    DriverConfig,
    TimingOverrides,
    limit_specs,
)
from lnn_control.nn.checkpoint import load
from lnn_control.nn.policy import CORES, Policy, PolicyConfig
from lnn_control.paths import ModelNotFoundError, resolve_model
from lnn_control.ros.node_util import check_value, declare_config, declare_spec, describe, param
from lnn_control.vision import DEFAULT_MAX_PIXELS

RANDOM_PREFIX = "random:"


class ParameterError(ValueError):
    """A parameter value the node cannot start with; the message names the parameter and how to fix it."""


@dataclass(frozen=True)
class ModelParams:
    """Every node that runs the policy: which model, how many torch threads."""

    model: str = param(
        "",
        "checkpoint path (stem, .json or .safetensors; a bare name is also looked up in the package's models/); "
        "empty: the model shipped in models/; 'random:<core>:<seed>[:<action>]': an untrained policy, for tests and "
        "demos only",
    )
    threads: int = param(
        1, "torch (or onnxruntime) intra-op threads (1 is fastest on a small computer whose other cores are busy)",
        min=1, max=256,
    )
    inference: str = param(
        "torch", "where the network runs: torch, or onnxruntime (exported at start, checked against torch on a few "
        "frames; a mismatch beyond 1e-5 runs torch with an error)", choices=("torch", "onnxruntime"),
    )


@dataclass(frozen=True)
class CameraParams(CropOverrides):
    """Nodes that subscribe the camera (perception_node, drive_node); the crops are :class:`DriverConfig` fields."""

    image_transport: str = param(
        "raw",
        "raw: sensor_msgs/Image on camera/image_raw; compressed: sensor_msgs/CompressedImage (jpeg, png) on "
        "camera/image_raw/compressed",
        choices=("raw", "compressed"),
    )
    max_pixels: int = param(
        DEFAULT_MAX_PIXELS, "frames with more pixels (width x height) are dropped undecoded", min=1, max=2**31 - 1
    )


@dataclass(frozen=True)
class CommandParams(TimingOverrides):
    """Nodes that publish commands (policy_node, drive_node). Timing and the timeout may change at run time; the
    timing is :class:`DriverConfig`'s. The limits are declared per field of the model's action
    (:func:`declare_limits`)."""

    stamped: bool = param(
        True, "publish geometry_msgs/TwistStamped (header stamp = the camera stamp); false: Twist"
    )
    frame_id: str = param("base_link", "header frame_id of TwistStamped commands")
    enabled: bool = param(
        False, "start enabled (publish the network's commands); false: zero velocity until the service ~/enable says "
        "true. `lnn-control up` and the launch files enable it behind the command mux, which arms autonomy itself",
    )
    timeout: float = param(
        0.2, "watchdog: seconds (node clock) without input before zero velocity", min=0.001, max=60.0, dynamic=True
    )
    watchdog_rate: float = param(
        20.0, "Hz at which the watchdog checks, and repeats zero velocity while stopped", min=0.1, max=1000.0
    )

    def driver_config(self) -> DriverConfig:
        """The :class:`DriverConfig` of this timing (crops and limits: the model's own); ``ValueError`` with the
        reason when it does not fit together."""
        return DriverConfig().with_params(self)


#: The parameter groups each node declares (use_sim_time comes with every rclpy node).
NODE_PARAMETERS: dict[str, tuple[type, ...]] = {
    "perception_node": (ModelParams, CameraParams),
    "policy_node": (ModelParams, CommandParams),
    "drive_node": (ModelParams, CameraParams, CommandParams),
}


def parameter_specs(node: str, schema: ActionSchema = CAR) -> list[dict[str, Any]]:
    """Every parameter ``node`` (a key of :data:`NODE_PARAMETERS`) declares when its model's action is ``schema``,
    as :func:`~lnn_control.ros.node_util.describe` lists them (the limits: :func:`~lnn_control.driver.limit_specs`)."""
    groups = NODE_PARAMETERS[node]
    specs = [spec for group in groups for spec in describe(group)]
    return specs + (limit_specs(schema) if CommandParams in groups else [])


def problem_key(message: str) -> str:
    """Throttle key of a log line: its text with the numbers blanked, so a new kind of problem is never hidden."""
    return re.sub(r"\d+", "#", message)


# -- what the parameters build ----------------------------------------------------------------------------------------


def load_policy(spec: str) -> Policy:
    """The policy named by the ``model`` parameter (see the module docstring)."""
    if spec.startswith(RANDOM_PREFIX):
        parts = spec[len(RANDOM_PREFIX) :].split(":")
        if (len(parts) not in (2, 3) or parts[0] not in CORES or not re.fullmatch(r"-?\d+", parts[1])
                or (len(parts) == 3 and parts[2] not in SCHEMAS)):
            raise ParameterError(
                f"parameter 'model' is {spec!r}: expected 'random:<core>:<seed>[:<action>]' with core one of "
                f"{', '.join(CORES)} and action one of {', '.join(SCHEMAS)} (default car)"
            )
        action = parts[2] if len(parts) == 3 else CAR.name
        return Policy(PolicyConfig(core=parts[0], seed=int(parts[1]), action=action)).eval()
    try:
        return load(resolve_model(spec))
    except (ModelNotFoundError, ValueError) as exc:  # both name the file and the problem
        raise ParameterError(f"parameter 'model' ({spec or 'empty: the shipped model'}): {exc}") from exc


def build_driver(node: Node, model: ModelParams, camera: CameraParams | None = None) -> Driver:
    """Set torch's threads, load the policy and make the node's :class:`Driver` with the camera's crops (limits and
    timing are set by :func:`command_params`); settings that differ from the model's are logged as a warning."""
    torch.set_num_threads(model.threads)
    config = DriverConfig().with_params(camera) if camera is not None else DriverConfig()
    policy = load_policy(model.model)  # ParameterError naming the model
    try:
        driver = Driver(policy, config, warn=node.get_logger().warning, backend=model.inference, threads=model.threads)
    except ValueError as exc:
        raise ParameterError(f"invalid crop: {exc}") from exc
    pre, config, timing = driver.preprocess, driver.policy.config, driver.policy.config.timing
    node.get_logger().info(
        f"model {model.model or 'shipped'}: {config.core}, {config.features} features, input {pre.width}x{pre.height} "
        f"after crop t{pre.crop_top} b{pre.crop_bottom} l{pre.crop_left} r{pre.crop_right}; trained with nominal_dt "
        f"{timing.nominal_dt:g} s, dt in [{timing.min_dt:g}, {timing.max_dt:g}] s, reset_gap {timing.reset_gap:g} s; "
        f"action {config.action.name}; backend {driver.backend.name}, {model.threads} thread(s)"
    )
    return driver


def declare_limits(node: Node, driver: Driver) -> dict[str, float]:
    """Declare ``limits.<field>.min|max|max_rate`` for each field of the driver's action (defaults: the schema's
    own) and return those set to another value as :attr:`DriverConfig.limits` keys (``"velocity.max"``)."""
    limits = {}
    for spec in limit_specs(driver.schema):
        value = declare_spec(node, spec["name"], spec)
        if value != spec["default"]:
            limits[spec["name"][len(LIMITS_PREFIX):]] = value
    return limits


def command_params(node: Node, driver: Driver, apply: Any) -> CommandParams:
    """Declare :class:`CommandParams` and the action's limits, set the driver's limits and timing from them, and
    accept run-time changes of the dynamic ones when the result is valid (then ``apply(params)``); refuse others
    with the reason."""
    params = declare_config(node, CommandParams)
    try:
        limits = declare_limits(node, driver)
        driver.config = driver.config.with_params(params).with_limits(limits)
    except ValueError as exc:
        raise ParameterError(f"invalid timing or limits: {exc}") from exc
    specs = {spec["name"]: spec for spec in describe(CommandParams) + limit_specs(driver.schema)}
    current = [params]

    def callback(changes: list) -> SetParametersResult:
        updates, limit_updates = {}, {}
        try:
            for change in changes:
                spec = specs.get(change.name)
                if spec is None or not spec["dynamic"]:
                    continue
                value = check_value(change.name, spec["kind"], change.value, spec)
                if change.name.startswith(LIMITS_PREFIX):
                    limit_updates[change.name[len(LIMITS_PREFIX):]] = value
                else:
                    updates[change.name] = value
            candidate = dataclasses.replace(current[0], **updates)
            if updates or limit_updates:  # nothing changes when it raises
                driver.config = driver.config.with_params(candidate).with_limits(limit_updates)
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        if updates:
            current[0] = candidate
            apply(candidate)
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(callback)
    return params


def log_summary(node: Node, text: str) -> None:
    """Log ``text`` at shutdown: to rosout while the context lives, else (after Ctrl-C or SIGTERM) to stderr only."""
    if node.context.ok():
        node.get_logger().info(text)
    else:
        print(f"[{node.get_name()}] {text}", file=sys.stderr)

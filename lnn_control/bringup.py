"""Node sets started from the same config YAML the launch files use, without launch_ros (``lnn-control up``,
:mod:`lnn_control.cli.up`).

    lnn-control up drive|drive-split|record|sim-drive|record-sim|dagger-sim|teleop-sim [--config FILE ...]
                   [--set NODE.PARAM=VALUE ...] [--duration S] [--processes] [--threads N] [--local]
                   [--without NODE ...] [--with NODE ...] [--namespace NS]

The node sets are described once, in ``config/node_sets.yaml`` (:data:`NODE_SETS`); the launch files start them
through :mod:`lnn_control.launching` and :func:`resolve_set`, as ``up`` does, and a test holds the file to the
console scripts in ``setup.py`` and the files in ``config/``. Parameters: the set's config files
(``config/<name>.yaml``, in the standard ``node_name: ros__parameters:`` form; ``/**:`` gives every node), then
``use_sim_time: true`` and sim_node's ``wait_for`` and ``wait_for_recorders`` (the set's nodes that take its topics)
for the simulator sets, then every ``--config FILE`` in order, then every ``--set``; later wins, and a later ``/**``
value wins over an earlier one given to a single node. They are merged into one parameter file whose keys match the
nodes in any namespace (``/**`` first, then ``/**/node_name``). When the command mux is
part of the set, the node that drives (policy_node or drive_node) is remapped from ``cmd_vel`` to ``lnn/cmd_vel``,
the mux's input, and is ``enabled`` (the mux arms autonomy). A set without sim_node drives a real vehicle: its
model-loading nodes must be given a ``model`` explicitly (:func:`check_model_given`).

By default all nodes run in this process on one SingleThreadedExecutor (no node needs concurrent callbacks;
``bench/bench_node_sets.py`` measures each set both ways); ``--threads N`` asks for a MultiThreadedExecutor.
``--processes`` runs each node's console script in a process of its own with ``--ros-args --params-file FILE -r
...`` instead, and stops them all when one exits or ``up`` is told to stop; the children also die with ``up``
however it ends (SIGKILL included). Either way SIGINT, SIGTERM and SIGHUP stop the nodes in the order of
:mod:`lnn_control.ros.spin`.

DDS: ``FASTDDS_DEFAULT_PROFILES_FILE`` (and the Fast DDS 2.x name) is set to ``config/fastdds.xml`` (a 16 MiB
shared-memory segment, so 640x480 frames cross processes) unless the user set one; ``--local`` instead keeps every
packet on this machine (loopback-only profile, ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``, the caller's
``ROS_DOMAIN_ID`` or a random one), which tests and demos use.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lnn_control.paths import config_file
from lnn_control.processes import ProcessGroup
from lnn_control.ros import env as ros_env

#: Console script -> module under ``lnn_control.nodes`` (the same pairs as ``NODES`` in setup.py; a test checks).
NODE_MODULES: dict[str, str] = {
    "perception_node": "perception",
    "policy_node": "policy",
    "drive_node": "drive",
    "command_mux_node": "mux",
    "teleop_keyboard_node": "teleop_keyboard",
    "joy_teleop_node": "joy_teleop",
    "recorder_node": "recorder",
    "sim_node": "simulator",
    "demonstrator_node": "demonstrator",
    "drone_adapter_node": "drone_adapter",
    "drone_demonstrator_node": "drone_demonstrator",
    "vehicle_adapter_node": "vehicle_adapter",
    "camera_node": "camera",
}

MUX = "command_mux_node"
#: Nodes whose ``cmd_vel`` becomes ``lnn/cmd_vel`` (the mux's policy input) when the mux runs beside them.
DRIVING_NODES = ("policy_node", "drive_node")
MUXED_REMAPS = (("cmd_vel", "lnn/cmd_vel"),)
#: What the driving nodes are given when the mux runs beside them (over the set's config files, under every other
#: source): the mux arms autonomy (its policy input counts only while armed), so the node behind it publishes what it
#: computes; without the mux the node's own ``enabled`` (false in config/drive.yaml) keeps it from driving unarmed.
MUXED_PARAMS = {"enabled": True}
#: Nodes that load a model; on a real vehicle (a set without sim_node) each must be given one explicitly.
MODEL_NODES = ("perception_node", "policy_node", "drive_node")
SIM_NODE = "sim_node"
#: Nodes that take sim_node's topics (camera, state, episodes): sim_node's ``wait_for`` in a set, so the run starts
#: when they are all there (a policy loading its model gets frame 0, a late demonstrator or recorder misses nothing).
SIM_CONSUMERS = ("drive_node", "perception_node", "demonstrator_node", "drone_demonstrator_node", "recorder_node")
#: Of those, the ones that report their matched publishers (sim_node's ``wait_for_recorders``).
RECORDERS = ("recorder_node",)
WILDCARD = "*"


@dataclass(frozen=True)
class NodeSet:
    """Executables started together, and the config files (under ``config/``) their parameters come from."""

    nodes: tuple[str, ...]
    configs: tuple[str, ...]
    description: str
    sim_time: bool = False
    #: Nodes the launch file starts on request and ``--with`` adds (e.g. a joystick teleop).
    optional: tuple[str, ...] = ()
    #: (our node, ``package/executable``): another package's node that must run beside ours (joy/joy_node feeds
    #: joy_teleop_node); the launch files start it with ours, ``up`` says that it needs one.
    external: tuple[tuple[str, str], ...] = ()


class BringupError(RuntimeError):
    """Something ``up`` cannot start; the message says what and how to fix it."""


#: The file that describes the node sets (``up`` and launch/*.launch.py through :mod:`lnn_control.launching`).
NODE_SETS_FILE = "node_sets.yaml"
_SET_KEYS = {"description": str, "nodes": list, "configs": list, "optional": list, "sim_time": bool, "external": dict}


def _external_nodes(where: str, entry: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """A set's ``external: {our_node: [package/executable, ...]}`` as (node, ``package/executable``) pairs."""
    pairs = []
    ours = entry["nodes"] + entry.get("optional", [])
    for node, others in entry.get("external", {}).items():
        if node not in ours:
            raise BringupError(f"{where}: 'external' names {node!r}, which is not one of the set's nodes {ours}")
        if not isinstance(others, list) or not all(
            isinstance(o, str) and len(o.split("/")) == 2 and all(o.split("/")) for o in others
        ):
            raise BringupError(f"{where}: 'external' of {node!r} must be a list of package/executable names")
        pairs += [(node, other) for other in others]
    return tuple(pairs)


def load_node_sets(path: Path) -> dict[str, NodeSet]:
    """``config/node_sets.yaml`` -> {set name: NodeSet}; errors name the file, the set and the key."""
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise BringupError(f"{path}: cannot read the node sets ({exc})") from exc
    if not isinstance(document, dict) or not document:
        raise BringupError(f"{path}: expected 'set-name: {{nodes: [...], configs: [...], ...}}' mappings")
    sets: dict[str, NodeSet] = {}
    for name, entry in document.items():
        where = f"{path}: set {name!r}"
        if not isinstance(entry, dict):
            raise BringupError(f"{where}: expected a mapping with {', '.join(_SET_KEYS)}")
        for key, value in entry.items():
            if key not in _SET_KEYS:
                raise BringupError(f"{where}: unknown key {key!r} (known: {', '.join(_SET_KEYS)})")
            kind = _SET_KEYS[key]
            if not isinstance(value, kind) or (kind is list and not all(isinstance(v, str) for v in value)):
                wanted = {list: "a list of names", dict: "a mapping"}.get(kind, kind.__name__)
                raise BringupError(f"{where}: {key!r} must be {wanted}")
        missing = [key for key in ("description", "nodes", "configs") if not entry.get(key)]
        if missing:
            raise BringupError(f"{where}: no {', '.join(repr(k) for k in missing)}")
        unknown = [n for n in entry["nodes"] + entry.get("optional", []) if n not in NODE_MODULES]
        if unknown:
            raise BringupError(f"{where}: unknown nodes {unknown}; known: {', '.join(NODE_MODULES)}")
        sets[str(name)] = NodeSet(
            tuple(entry["nodes"]),
            tuple(entry["configs"]),
            " ".join(entry["description"].split()),
            entry.get("sim_time", False),
            tuple(entry.get("optional", ())),
            _external_nodes(where, entry),
        )
    return sets


#: The node sets, as config/node_sets.yaml describes them.
NODE_SETS: dict[str, NodeSet] = load_node_sets(config_file(NODE_SETS_FILE))


# -- parameters -----------------------------------------------------------------------------------------------------

Params = dict[str, dict[str, Any]]  # node name (or WILDCARD) -> parameter -> value


def _node_key(key: str) -> str:
    """YAML node key -> node name: ``drive_node``, ``/drive_node`` and ``/**/drive_node`` alike; ``/**`` is WILDCARD."""
    key = str(key)
    if key in ("/**", "**"):
        return WILDCARD
    for prefix in ("/**/", "/"):
        if key.startswith(prefix) and "/" not in key[len(prefix) :]:
            return key[len(prefix) :]
    return key


def read_params(path: Path) -> Params:
    """A ``node_name: ros__parameters: {...}`` file -> {node: {param: value}}; errors name the file and the key."""
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise BringupError(f"{path}: cannot read the parameter file ({exc.strerror or exc})") from exc
    except yaml.YAMLError as exc:
        raise BringupError(f"{path}: not valid YAML ({exc})") from exc
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise BringupError(f"{path}: expected 'node_name: ros__parameters: ...' mappings at the top level")
    params: Params = {}
    for key, body in document.items():  # in file order, as rcl applies them: a later ``/**`` wins over a node's
        if not isinstance(body, dict) or not isinstance(body.get("ros__parameters"), dict):
            raise BringupError(f"{path}: node {key!r} has no 'ros__parameters:' mapping")
        params = merge(params, {_node_key(key): _flatten(body["ros__parameters"])})
    return params


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested YAML mappings -> dotted parameter names, as rcl reads them."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def merge(base: Params, update: Params) -> Params:
    """``base`` with ``update``'s values put over it (new dict). A ``/**`` value in ``update`` also wins over what
    ``base`` gave single nodes for that parameter (later wins, whichever key names the node)."""
    merged = {node: dict(values) for node, values in base.items()}
    for name in update.get(WILDCARD, {}):
        for node, values in merged.items():
            if node != WILDCARD:
                values.pop(name, None)
    for node, values in update.items():
        merged.setdefault(node, {}).update(values)
    return merged


def node_params(params: Params, node: str) -> dict[str, Any]:
    """What ``node`` is given: the ``/**`` values, then its own over them (parameters it does not declare included,
    which rclpy ignores)."""
    return {**params.get(WILDCARD, {}), **params.get(node, {})}


def parse_sets(items: Iterable[str], nodes: Iterable[str], typed: Params) -> Params:
    """``NODE.PARAM=VALUE`` strings -> Params. Values are YAML scalars; an integer given for a parameter the config
    files hold as a float becomes a float (``limits.velocity.max=1`` means 1.0), and any value given for a parameter
    they hold as text stays text (``camera_node.device=0``). ``*.PARAM`` sets it for every node."""
    nodes = set(nodes)
    params: Params = {}
    for item in items:
        target, sep, text = item.partition("=")
        node, dot, name = target.partition(".")
        if not sep or not dot or not node or not name:
            raise BringupError(f"--set {item!r}: expected NODE.PARAM=VALUE, e.g. drive_node.limits.velocity.max=0.5")
        if node != WILDCARD and node not in nodes:
            raise BringupError(f"--set {item!r}: node {node!r} is not in this set ({', '.join(sorted(nodes))})")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        if isinstance(value, dict):
            value = text
        known = typed.get(node, {}).get(name, typed.get(WILDCARD, {}).get(name))
        if isinstance(value, int) and not isinstance(value, bool) and isinstance(known, float):
            value = float(value)
        elif isinstance(known, str) and not isinstance(value, str):
            value = text.strip()  # camera_node.device=0 is the text "0", as the file holds it
        params.setdefault(node, {})[name] = value
    return params


def params_document(params: Params) -> dict[str, Any]:
    """Params -> the rcl parameter-file document, keys matching the nodes in any namespace. ``/**`` comes first, so
    a node's own values (which :func:`merge` keeps only where they came after the ``/**`` ones) win."""
    order = sorted(params, key=lambda node: node != WILDCARD)
    return {
        ("/**" if node == WILDCARD else f"/**/{node}"): {"ros__parameters": params[node]}
        for node in order
        if params[node]
    }


# -- the plan -------------------------------------------------------------------------------------------------------


@dataclass
class Plan:
    """What ``up`` starts: the nodes, their merged parameters, the global ROS arguments and the environment."""

    name: str
    nodes: list[str]
    params: Params
    configs: list[Path]
    remaps: list[tuple[str, str, str]] = field(default_factory=list)  # (node, from, to)
    namespace: str = ""
    env: dict[str, str] = field(default_factory=dict)
    threads: int = 1
    #: (our node, package, executable): other packages' nodes ours need, which ``up`` cannot start
    external: list[tuple[str, str, str]] = field(default_factory=list)

    def ros_args(self, params_file: Path) -> list[str]:
        args = ["--ros-args", "--params-file", str(params_file)]
        for node, source, target in self.remaps:
            args += ["-r", f"{node}:{source}:={target}"]
        if self.namespace.strip("/"):
            args += ["-r", f"__ns:=/{self.namespace.strip('/')}"]  # rcl takes only an absolute namespace here
        return args


def module_name(executable: str) -> str:
    return f"lnn_control.nodes.{NODE_MODULES[executable]}"


@dataclass
class ResolvedSet:
    """A node set made concrete: the nodes to start, their merged parameters, the files read, the remaps."""

    nodes: list[str]
    params: Params
    configs: list[Path]
    remaps: list[tuple[str, str, str]]  # (node, from, to)
    #: (our node, package, executable) of the other packages' nodes the started nodes need (NodeSet.external)
    external: list[tuple[str, str, str]] = field(default_factory=list)


def _select_nodes(name: str, without: Iterable[str], with_nodes: Iterable[str]) -> list[str]:
    """The set's nodes less ``without``, plus ``with_nodes``; each must exist and its module be installed."""
    node_set = NODE_SETS[name]
    without = list(without)
    nodes = [n for n in node_set.nodes if n not in without]
    for extra in with_nodes:
        if extra not in NODE_MODULES:
            raise BringupError(f"--with {extra!r}: unknown node; choose from {', '.join(NODE_MODULES)}")
        if extra not in nodes:
            nodes.append(extra)
    for node in without:
        if node not in node_set.nodes:
            raise BringupError(f"--without {node!r}: not in set {name!r} ({', '.join(node_set.nodes)})")
    if not nodes:
        raise BringupError(f"nothing left to start in set {name!r}")
    missing = [n for n in nodes if importlib.util.find_spec(module_name(n)) is None]
    if missing:
        raise BringupError(
            f"node set {name!r} needs "
            + ", ".join(f"{n} ({module_name(n)})" for n in missing)
            + ", which this install does not have yet; leave it out with --without, or pick another set "
            f"({', '.join(NODE_SETS)})"
        )
    return nodes


def _renamed() -> dict[str, dict[str, str]]:
    """Node -> {parameter of an earlier release: what replaced it}."""
    from lnn_control.renamed_params import RENAMED_LIMITS, RENAMED_MUX

    return {MUX: RENAMED_MUX, **{node: RENAMED_LIMITS for node in DRIVING_NODES}}


def _refuse_renamed(params: Params, configs: Iterable[Path]) -> None:
    """A parameter that an earlier release had and this one renamed would be ignored by rclpy: refuse it, naming the
    new one (BringupError)."""
    renamed = _renamed()
    found = []
    for node, values in params.items():
        # under /** only the mux's old names: max_speed and the like are real parameters of other nodes
        targets = {MUX: renamed[MUX]} if node == WILDCARD else {node: renamed.get(node, {})}
        for old in values:
            for name, table in targets.items():
                if old in table:
                    found.append(f"{name}.{old} is now {table[old]}")
    if found:
        raise BringupError(f"{'; '.join(sorted(set(found)))} (parameters from {', '.join(map(str, configs))} or "
                           "--set); rename them")


def resolve_set(
    name: str,
    *,
    without: Iterable[str] = (),
    with_nodes: Iterable[str] = (),
    replace: Mapping[str, str | Path] | None = None,
    extra_configs: Iterable[str | Path] = (),
    overrides: Params | None = None,
    set_items: Iterable[str] = (),
) -> ResolvedSet:
    """The nodes, parameters and remaps of set ``name``, for ``up`` and the launch files alike.

    Parameters, later wins: the set's config files (``replace`` maps one of their names to another file), then
    :data:`MUXED_PARAMS` for the driving nodes when the mux runs, then ``use_sim_time: true`` for the simulator sets
    and sim_node's ``wait_for`` (the set's :data:`SIM_CONSUMERS`), then ``extra_configs`` (``up --config``), then
    ``overrides`` (the launch files' arguments), then ``set_items`` (``up --set NODE.PARAM=VALUE``). A real-vehicle
    set without a model is a :class:`BringupError`.
    """
    if name not in NODE_SETS:
        raise BringupError(f"unknown node set {name!r}; choose from {', '.join(NODE_SETS)}")
    node_set = NODE_SETS[name]
    nodes = _select_nodes(name, without, with_nodes)
    replace = dict(replace or {})
    configs = [Path(replace.pop(c)).expanduser() if c in replace else config_file(c) for c in node_set.configs]
    if replace:
        raise BringupError(f"node set {name!r} reads no {', '.join(sorted(replace))} (it reads {node_set.configs})")
    for path in configs:
        if not path.is_file():
            raise BringupError(f"node set {name!r} reads {path}, which does not exist")
    params: Params = {}
    for path in configs:
        params = merge(params, read_params(path))
    if MUX in nodes:
        params = merge(params, {n: dict(MUXED_PARAMS) for n in nodes if n in DRIVING_NODES})
    if node_set.sim_time:
        params = merge(params, {WILDCARD: {"use_sim_time": True}})
    consumers = [n for n in nodes if n in SIM_CONSUMERS]
    if SIM_NODE in nodes and consumers:
        recorders = [n for n in consumers if n in RECORDERS]
        params = merge(params, {SIM_NODE: {"wait_for": consumers, "wait_for_recorders": recorders}})
    for extra in extra_configs:
        path = Path(extra).expanduser()
        configs.append(path)
        params = merge(params, read_params(path))
    params = merge(params, overrides or {})
    params = merge(params, parse_sets(set_items, nodes, params))
    _refuse_renamed(params, configs)
    check_model_given(name, nodes, params)
    remaps = [(n, s, t) for n in nodes if n in DRIVING_NODES and MUX in nodes for s, t in MUXED_REMAPS]
    external = [(n, *other.split("/")) for n, other in node_set.external if n in nodes]
    return ResolvedSet(nodes, params, configs, remaps, external)


def is_robot_set(name: str) -> bool:
    """A set that drives a real vehicle: one without sim_node."""
    return SIM_NODE not in NODE_SETS[name].nodes


def check_model_given(name: str, nodes: Iterable[str], params: Params) -> None:
    """On a real vehicle every node that loads a model must be given one (``model`` not empty): the models shipped
    in models/ are for the simulator sets. ``BringupError`` saying how to give it otherwise."""
    if not is_robot_set(name):
        return
    missing = [n for n in nodes if n in MODEL_NODES and not str(node_params(params, n).get("model") or "")]
    if missing:
        raise BringupError(
            f"node set {name!r} drives a real vehicle, so {' and '.join(missing)} need(s) the model named explicitly "
            f"(the models shipped in models/ are for the simulator sets): lnn-control up {name} --set "
            f"'*.model=PATH', or ros2 launch lnn_control drive.launch.py model:=PATH (PATH: a checkpoint stem, "
            f"stem.json or stem.safetensors; random:ltc:0 for an untrained network that only tests the plumbing)"
        )


def make_plan(
    name: str,
    *,
    without: Iterable[str] = (),
    with_nodes: Iterable[str] = (),
    configs: Iterable[str | Path] = (),
    set_items: Iterable[str] = (),
    local: bool = False,
    threads: int | None = None,
    namespace: str = "",
    base_env: Mapping[str, str] | None = None,
) -> Plan:
    """Check set ``name``, its node modules and config files; merge the parameters (``configs``: ``up --config``,
    ``set_items``: ``up --set``); choose the DDS environment (``local``: this machine only) from ``base_env``
    (default: this process's)."""
    resolved = resolve_set(name, without=without, with_nodes=with_nodes, extra_configs=configs, set_items=set_items)
    source = dict(os.environ if base_env is None else base_env)
    if local:
        domain = source.get("ROS_DOMAIN_ID", "").strip()
        env = ros_env.local_env(int(domain) if domain.isdigit() else None, base=source)
    else:
        env = ros_env.robot_env(source)
    return Plan(
        name, resolved.nodes, resolved.params, resolved.configs, resolved.remaps, namespace or "", env,
        1 if threads is None else threads, external=resolved.external,
    )


# -- running ----------------------------------------------------------------------------------------------------------


def console_command(executable: str) -> list[str]:
    """How to run a node's console script: next to this Python, in a colcon ``lib/lnn_control``, on PATH, or by
    importing its ``main`` when no script is installed."""
    for folder in (Path(sys.executable).parent, Path(sys.prefix) / "lib" / "lnn_control"):
        candidate = folder / executable
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return [str(candidate)]
    found = shutil.which(executable)
    if found:
        return [found]
    return [sys.executable, "-c", f"import sys; from {module_name(executable)} import main; sys.exit(main())"]


def _node_class(executable: str) -> type:
    from rclpy.node import Node

    module = importlib.import_module(module_name(executable))
    classes = [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type) and issubclass(obj, Node) and obj is not Node and obj.__module__ == module.__name__
    ]
    if len(classes) != 1:
        raise BringupError(
            f"{module.__name__} defines {len(classes)} rclpy Node classes, so {executable} cannot run in this "
            "process; use --processes"
        )
    return classes[0]


def run_in_process(plan: Plan, params_file: Path, duration: float | None) -> int:
    """All nodes in this process on one executor (multi-threaded when ``plan.threads > 1``), started and stopped
    as each node's own ``main`` does (lnn_control.ros.spin: our signal handlers, close, destroy, shutdown)."""
    ros_env.apply(plan.env)
    from lnn_control.ros.spin import run_nodes

    classes = [_node_class(name) for name in plan.nodes]

    def warn_unknown(nodes: list) -> None:
        for node in nodes:
            _warn_unknown_params(node, plan.params)

    args = plan.ros_args(params_file)
    return run_nodes(classes, args, threads=plan.threads, duration=duration, on_ready=warn_unknown)


def _warn_unknown_params(node: Any, params: Params) -> None:
    """Parameters given for a node that it does not declare are ignored by rclpy: say so (typos)."""
    unknown = sorted(name for name in params.get(node.get_name(), {}) if not node.has_parameter(name))
    if unknown:
        node.get_logger().warning(f"ignoring parameters it does not declare: {', '.join(unknown)}")


def run_processes(plan: Plan, params_file: Path, duration: float | None) -> int:
    """One process per node (its console script); all stop when one exits, on SIGINT, SIGTERM or SIGHUP, or after
    ``duration``; each child also dies with this process, however it ends. 1 if a node failed."""
    from lnn_control.ros.spin import StopRequest

    with StopRequest() as stop, ProcessGroup(plan.env) as group:
        for name in plan.nodes:
            if not stop.requested:
                group.start(name, console_command(name) + plan.ros_args(params_file))
        end = None if duration is None else time.monotonic() + duration
        exited: dict[str, int] = {}
        while not stop.requested and not exited and (end is None or time.monotonic() < end):
            stop.event.wait(0.1)
            exited = group.exited()
        group.stop_all()
    if exited:
        print(
            f"{'; '.join(f'{name} exited with status {rc}' for name, rc in exited.items())}: stopped the others",
            file=sys.stderr,
        )
    return 1 if any(rc != 0 for rc in exited.values()) else 0


# -- the plan, shown and started -------------------------------------------------------------------------------


def describe_plan(plan: Plan) -> str:
    """The resolved set as YAML: what ``up`` would start, with which remaps and which parameter file."""
    head = {
        "set": plan.name,
        "nodes": plan.nodes,
        "configs": [str(p) for p in plan.configs],
        "remaps": [f"{node}:{source}:={target}" for node, source, target in plan.remaps],
        "namespace": plan.namespace or "/",
    }
    if plan.external:
        head["external (start them yourself)"] = [f"{package}/{executable} for {node}"
                                                  for node, package, executable in plan.external]
    started = {node: values for node, values in plan.params.items() if node in plan.nodes or node == WILDCARD}
    params = yaml.safe_dump(params_document(started), sort_keys=False)
    return yaml.safe_dump(head, sort_keys=False) + "---\n" + params


def external_warnings(plan: Plan) -> list[str]:
    """What ``up`` says about the other packages' nodes the plan's nodes need (it starts only lnn_control's)."""
    return [
        f"warning: {node} needs {package}/{executable} (or another publisher of its input) running beside it, and "
        f"`lnn-control up` starts only lnn_control's nodes (the pip path has no {package} package): on a ROS install "
        f"run `ros2 run {package} {executable}` in another terminal, or use `ros2 launch`, which starts it"
        for node, package, executable in plan.external
    ]


def start(plan: Plan, *, processes: bool = False, duration: float | None = None) -> int:
    """Write the merged parameter file and run the plan's nodes (one process each with ``processes``, else all in
    this one) until told to stop or ``duration`` s; the exit status (2 when a node cannot run in this process)."""
    for line in external_warnings(plan):
        print(line, file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="lnn-up-") as folder:
        params_file = Path(folder) / "params.yaml"
        params_file.write_text(yaml.safe_dump(params_document(plan.params), sort_keys=False))
        if processes:
            layout = "one process per node"
        elif plan.threads > 1:
            layout = f"one process, MultiThreadedExecutor with {plan.threads} threads"
        else:
            layout = "one process, SingleThreadedExecutor"
        print(
            f"lnn-control up {plan.name}: {', '.join(plan.nodes)} ({layout}); parameters from "
            f"{', '.join(str(p) for p in plan.configs)}; ROS_DOMAIN_ID={plan.env.get('ROS_DOMAIN_ID', '0')}",
            flush=True,
        )
        try:
            if processes:
                return run_processes(plan, params_file, duration)
            return run_in_process(plan, params_file, duration)
        except BringupError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

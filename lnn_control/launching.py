"""Launch files start the node sets of ``config/node_sets.yaml`` through here, so they start what ``lnn-control up``
starts: the same nodes, the same merged parameters (:func:`lnn_control.bringup.resolve_set`, written to one
parameter file as ``up`` writes it) and the same remaps. A launch file declares its arguments and says what they
make of a set (:class:`SetChoice`); launch and launch_ros are imported only when the description is built, so this
module (and the launch files' own code) can be imported without them::

    def choose(arg: dict[str, str]) -> SetChoice:
        return SetChoice("sim-drive", params={"sim_node": {"seed": int(arg["seed"])}})

    def generate_launch_description():
        return launch_description({"seed": ("0", "seed of the first episode")}, choose)
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from lnn_control.bringup import WILDCARD, Params, params_document, resolve_set

PACKAGE = "lnn_control"
TRUE_WORDS = ("true", "1", "yes", "on")

#: launch argument name -> (default value, description)
Arguments = Mapping[str, tuple[str, str]]


@dataclass
class SetChoice:
    """What a launch file's arguments make of a node set (all optional but the set's name)."""

    set: str
    #: optional nodes to start too, and nodes of the set to leave out
    with_nodes: Sequence[str] = ()
    without: Sequence[str] = ()
    #: one of the set's config file names (``drive.yaml``) -> another file to read in its place
    configs: Mapping[str, str] = field(default_factory=dict)
    #: node (or ``*`` for all) -> parameter -> value, over the config files
    params: Params = field(default_factory=dict)
    #: node (or ``*`` for all) -> (from, to) remaps, after the set's own
    remaps: Mapping[str, Sequence[tuple[str, str]]] = field(default_factory=dict)
    namespace: str = ""
    #: node -> launch prefix (e.g. a terminal for a node that reads keys)
    prefixes: Mapping[str, str] = field(default_factory=dict)


#: The arguments of a simulator set whose policy drives: which checkpoint, and the first episode's seed.
SIM_POLICY_ARGUMENTS: Arguments = {
    "model": ("", "checkpoint stem; empty: what config/drive.yaml says (the shipped model)"),
    "seed": ("0", "seed of the first episode"),
}


def sim_policy_choice(set_name: str) -> Callable[[dict[str, str]], SetChoice]:
    """``choose`` for a simulator set where drive_node drives (:data:`SIM_POLICY_ARGUMENTS`)."""

    def choose(arg: dict[str, str]) -> SetChoice:
        params: Params = {"sim_node": {"seed": int(arg["seed"])}}
        if arg["model"]:
            params["drive_node"] = {"model": arg["model"]}
        return SetChoice(set_name, params=params)

    return choose


def truthy(text: str) -> bool:
    """A launch argument as a bool: true, 1, yes or on (any case)."""
    return text.strip().lower() in TRUE_WORDS


def node_actions(choice: SetChoice) -> list[dict[str, Any]]:
    """The keyword arguments of one launch_ros ``Node`` per node of the chosen set, in the set's order."""
    resolved = resolve_set(
        choice.set,
        without=choice.without,
        with_nodes=choice.with_nodes,
        replace=choice.configs,
        overrides=choice.params,
    )
    with tempfile.NamedTemporaryFile("w", prefix="lnn_launch_params_", suffix=".yaml", delete=False) as handle:
        yaml.safe_dump(params_document(resolved.params), handle, sort_keys=False)
    actions = []
    for node in resolved.nodes:
        remaps = [(source, target) for name, source, target in resolved.remaps if name == node]
        remaps += [*choice.remaps.get(WILDCARD, ()), *choice.remaps.get(node, ())]
        kwargs: dict[str, Any] = {
            "package": PACKAGE,
            "executable": node,
            "name": node,
            "output": "screen",
            "parameters": [handle.name],
            "remappings": remaps,
        }
        if choice.namespace:
            kwargs["namespace"] = choice.namespace
        if node in choice.prefixes:
            kwargs["prefix"] = choice.prefixes[node]
        actions.append(kwargs)
    actions += external_actions(choice, resolved.external, handle.name)
    return actions


def external_actions(choice: SetChoice, external: Sequence[tuple[str, str, str]], params_file: str) -> list[dict]:
    """launch_ros ``Node`` keyword arguments of the other packages' nodes the set's started nodes need
    (``external:`` in config/node_sets.yaml; e.g. joy/joy_node beside joy_teleop_node), after ours. Each gets the
    set's parameter file (its ``/**`` part, such as ``use_sim_time``, applies) and namespace, under its own name."""
    actions: list[dict[str, Any]] = []
    for _node, package, executable in external:
        if any(a["package"] == package and a["executable"] == executable for a in actions):
            continue  # two of our nodes need the same one: start it once
        kwargs: dict[str, Any] = {
            "package": package,
            "executable": executable,
            "name": executable,
            "output": "screen",
            "parameters": [params_file],
        }
        if choice.namespace:
            kwargs["namespace"] = choice.namespace
        actions.append(kwargs)
    return actions


def launch_description(arguments: Arguments, choose: Callable[[dict[str, str]], SetChoice]) -> Any:
    """A LaunchDescription declaring ``arguments`` that starts the set ``choose`` makes of their values."""
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    from launch import LaunchDescription

    def nodes(context: Any, *_args: Any, **_kwargs: Any) -> list:
        values = {name: LaunchConfiguration(name).perform(context) for name in arguments}
        return [Node(**kwargs) for kwargs in node_actions(choose(values))]

    declared = [DeclareLaunchArgument(n, default_value=d, description=t) for n, (d, t) in arguments.items()]
    return LaunchDescription([*declared, OpaqueFunction(function=nodes)])

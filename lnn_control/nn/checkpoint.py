"""Checkpoints: weights in safetensors, configuration in JSON beside them. No pickle anywhere.

``save(policy, "models/ncp")`` writes ``models/ncp.safetensors`` and ``models/ncp.json``. The JSON holds the
:class:`PolicyConfig` (with the preprocessing and the timing the Driver runs: what training used; a config saved
before ``timing`` existed loads with the defaults, the Driver's rule of that time), free-form metadata (training
run, data, figures) and the SHA-256 of the weights file, so a weights file paired with the wrong JSON, or altered
after saving, is caught before anything is built. Loading parses JSON and safetensors only; neither format can
carry code.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from lnn_control.nn.policy import Policy, PolicyConfig

FORMAT = "lnn_control.policy"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message names the file and what is wrong."""


def paths(path: str | Path) -> tuple[Path, Path]:
    """``(weights, config)`` paths for a stem or either file of a pair."""
    path = Path(path)
    if path.suffix in (".safetensors", ".json"):
        path = path.with_suffix("")
    return path.with_name(path.name + ".safetensors"), path.with_name(path.name + ".json")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save(policy: Policy, path: str | Path, metadata: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Write the pair; returns ``(weights, config)`` paths. The weights are written first, the JSON last."""
    weights, config = paths(path)
    weights.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in policy.state_dict().items()}
    save_file(tensors, str(weights), metadata={"format": FORMAT, "version": str(VERSION)})
    document = {
        "format": FORMAT,
        "version": VERSION,
        "config": policy.config.to_dict(),
        "parameters": policy.parameter_counts(),
        "weights": weights.name,
        "weights_sha256": _sha256(weights),
        "metadata": metadata or {},
    }
    config.write_text(json.dumps(document, indent=2) + "\n")
    return weights, config


def read_config(path: str | Path) -> dict[str, Any]:
    """The checkpoint's JSON document, validated (format, version, config fields)."""
    _, config = paths(path)
    if not config.is_file():
        raise CheckpointError(f"{config}: checkpoint config not found (expected beside the .safetensors file)")
    try:
        document = json.loads(config.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{config}: not valid JSON ({exc})") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise CheckpointError(f"{config}: not an lnn_control policy config (field 'format' must be {FORMAT!r})")
    if document.get("version") != VERSION:
        raise CheckpointError(f"{config}: unsupported version {document.get('version')!r} (this build reads {VERSION})")
    try:
        PolicyConfig.from_dict(document.get("config"))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{config}: field 'config': {exc}") from exc
    return document


def load(path: str | Path, device: str | torch.device = "cpu") -> Policy:
    """Load a policy in eval mode; any problem raises :class:`CheckpointError` naming the file."""
    weights, config_path = paths(path)
    document = read_config(path)
    config = PolicyConfig.from_dict(document["config"])
    if not weights.is_file():
        raise CheckpointError(f"{weights}: weights file not found")
    expected = document.get("weights_sha256")
    if expected is not None and _sha256(weights) != expected:
        raise CheckpointError(
            f"{weights}: contents do not match {config_path.name} (SHA-256 differs): the file was altered, truncated "
            "or belongs to another checkpoint"
        )
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights}: not a readable safetensors file ({exc})") from exc
    try:
        policy = Policy(config)
    except ValueError as exc:
        raise CheckpointError(f"{config_path}: cannot build the policy ({exc})") from exc
    state = policy.state_dict()
    missing = sorted(set(state) - set(tensors))
    unexpected = sorted(set(tensors) - set(state))
    if missing or unexpected:
        raise CheckpointError(
            f"{weights}: tensors do not match the config in {config_path.name}: missing {missing or 'none'}, "
            f"unexpected {unexpected or 'none'}"
        )
    for name, tensor in tensors.items():
        if tensor.shape != state[name].shape:
            raise CheckpointError(
                f"{weights}: tensor {name!r} has shape {tuple(tensor.shape)} but the config in {config_path.name} "
                f"builds {tuple(state[name].shape)}"
            )
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f"{weights}: tensor {name!r} holds NaN or infinite values")
    for mask in ("core.mask", "core.sensory_mask"):
        if mask in tensors and not torch.equal(tensors[mask], state[mask]):
            raise CheckpointError(
                f"{weights}: wiring {mask!r} differs from the wiring the config in {config_path.name} generates"
            )
    policy.load_state_dict(tensors)
    return policy.to(device).eval()


def describe(path: str | Path) -> str:
    """What a checkpoint is (loaded, so validated): core, wiring, sizes net of masks, preprocessing, metadata."""
    policy = load(path)
    document = read_config(path)
    counts = policy.parameter_counts()
    config = policy.config
    weights, _ = paths(path)
    pre = config.preprocess
    mode = f" ({config.cfc_mode})" if config.core == "cfc" else ""
    lines = [f"model        {weights}", f"core         {config.core}{mode}"]
    if "neurons" in counts:
        lines.append(f"wiring       {config.wiring}: {counts['neurons']} neurons, {counts['synapses']} synapses")
    lines += [
        f"parameters   recurrent {counts['recurrent']:,} (net of masks), conv head {counts['encoder']:,}, "
        f"total {counts['total']:,}",
        f"input        {pre.height}x{pre.width} RGB after crop t{pre.crop_top} b{pre.crop_bottom} "
        f"l{pre.crop_left} r{pre.crop_right}; dt unit {config.dt_unit_s} s",
        f"action       {config.action.name}: "
        + ", ".join(f"{f.name} [{f.unit}] in [{f.low:g}, {f.high:g}]" for f in config.action.fields)
        + f" (Twist {', '.join(f.twist for f in config.action.fields)}, frame {config.action.frame})",
        f"outputs      mean {list(config.target_mean)}, std {list(config.target_std)}",
        f"timing       nominal_dt {config.timing.nominal_dt:g} s, dt in [{config.timing.min_dt:g}, "
        f"{config.timing.max_dt:g}] s, reset_gap {config.timing.reset_gap:g} s",
    ]
    for key, value in document.get("metadata", {}).items():
        lines.append(f"{key:<12} {value if not isinstance(value, (dict, list)) else json.dumps(value)}")
    return "\n".join(lines)

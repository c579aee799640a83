"""Export the single-step policy for edge devices: TorchScript or ONNX (run with onnxruntime).

The exported function is :meth:`Policy.act`: ``(frame uint8 (1, H, W, 3), state (1, S), dt seconds (1, 1)) ->
(outputs (1, O), new state (1, S))``. The caller carries the state between frames, exactly as the nodes do.
``lnn-control export --model M --format onnx|torchscript [--out PATH]`` runs :func:`export`.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from lnn_control.nn.policy import Policy


class StepModule(nn.Module):
    """The policy's single step as a module whose ``forward`` is :meth:`Policy.act`."""

    def __init__(self, policy: Policy) -> None:
        super().__init__()
        self.policy = policy.eval()

    def forward(self, frame: Tensor, state: Tensor, dt: Tensor) -> tuple[Tensor, Tensor]:  # noqa: D102
        return self.policy.act(frame, state, dt)


def example_inputs(policy: Policy) -> tuple[Tensor, Tensor, Tensor]:
    """A zero frame, the initial state and a nominal dt, shaped for export."""
    pre = policy.config.preprocess
    frame = torch.zeros(1, pre.height, pre.width, 3, dtype=torch.uint8)
    return frame, policy.initial_state(1), torch.full((1, 1), policy.dt_unit_s)


def to_torchscript(policy: Policy, path: str | Path) -> Path:
    """Script the single step and save it (``torch.jit.load`` reads it back without Python code)."""
    path = Path(path)
    scripted = torch.jit.script(StepModule(policy))
    scripted.save(str(path))
    return path


def to_onnx(policy: Policy, path: str | Path, opset: int = 17) -> Path:
    """Trace the single step to ONNX with inputs ``frame``, ``state``, ``dt`` and outputs ``output``, ``next_state``."""
    path = Path(path)
    module = StepModule(policy)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            example_inputs(policy),
            str(path),
            input_names=["frame", "state", "dt"],
            output_names=["output", "next_state"],
            opset_version=opset,
            dynamo=False,
        )
    return path


FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}


def export(model: str | Path | None, format: str = "onnx", out: str | Path | None = None) -> Path:
    """Export the checkpoint ``model`` names (:func:`lnn_control.paths.resolve_model`) as ``format`` (onnx or
    torchscript) to ``out`` (default: beside the model, ``.onnx`` or ``.pt``); the file written."""
    from lnn_control.nn.checkpoint import load
    from lnn_control.paths import resolve_model

    if format not in FORMATS:
        raise ValueError(f"format {format!r}: choose from {', '.join(FORMATS)}")
    stem = resolve_model(model)
    target = Path(out) if out else stem.with_name(stem.name + FORMATS[format])
    return (to_onnx if format == "onnx" else to_torchscript)(load(stem), target)

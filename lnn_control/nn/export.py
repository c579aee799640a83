"""Export the single-step policy for edge devices: TorchScript or ONNX (run with onnxruntime).

The exported function is :meth:`Policy.act`: ``(frame uint8 (1, H, W, 3), state (1, S), dt seconds (1, 1)) ->
(outputs (1, O), new state (1, S))``. The caller carries the state between frames, exactly as the nodes do.
``lnn-control export --model M --format onnx|torchscript [--out PATH]``.
"""

from __future__ import annotations

import argparse
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


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``lnn-control export``."""
    parser.add_argument("--model", required=True, help="checkpoint (stem, .safetensors or .json)")
    parser.add_argument("--format", choices=("onnx", "torchscript"), default="onnx")
    parser.add_argument("--out", help="output file (default: beside the model, .onnx or .pt)")


def run(args: argparse.Namespace) -> int:
    """Export and print where the file went."""
    from lnn_control.nn.checkpoint import load, paths

    policy = load(args.model)
    weights, _ = paths(args.model)
    suffix = ".onnx" if args.format == "onnx" else ".pt"
    out = Path(args.out) if args.out else weights.with_suffix(suffix)
    (to_onnx if args.format == "onnx" else to_torchscript)(policy, out)
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB), single step: frame, state, dt -> output, next_state")
    return 0

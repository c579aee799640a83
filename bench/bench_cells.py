"""Ours vs ncps 1.0.1 for LTC-NCP19 and CfC-NCP19 on 32 inputs, in one run on this machine.

Figures: single-step latency (batch 1, one thread, inference mode) and one training step (batch 16 x 32 steps,
forward + backward + Adam), each beside the reference library measured in the same run, and the largest output
difference over 50 steps with the same weights (same numerics). Prints a table; the last line is JSON.

    python bench/bench_cells.py [--repeats 200]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ncps.torch import LTC as RefLTC  # noqa: E402
from ncps.torch import CfC as RefCfC  # noqa: E402
from ncps.wirings import NCP as RefNCP  # noqa: E402
from timing import median_seconds  # noqa: E402  (bench/timing.py)

from lnn_control.nn.cfc import CfCCell  # noqa: E402
from lnn_control.nn.ltc import LTCCell  # noqa: E402
from lnn_control.nn.wiring import Wiring  # noqa: E402


def paired(kind: str) -> tuple[torch.nn.Module, torch.nn.Module, torch.nn.Module, torch.nn.Module]:
    """(reference layer, reference cell, our cell) on the paper's NCP (12 inter, 6 command, 1 motor)."""
    torch.manual_seed(0)
    ref_wiring = RefNCP(12, 6, 1, 6, 4, 4, 6)
    layer = (RefLTC if kind == "ltc" else RefCfC)(32, ref_wiring, batch_first=True)
    layers = [list(ref_wiring.get_neurons_of_layer(i)) for i in range(ref_wiring.num_layers)]
    wiring = Wiring(ref_wiring.adjacency_matrix, ref_wiring.sensory_adjacency_matrix, ref_wiring.output_dim, layers)
    ref_cell = layer.rnn_cell
    with torch.no_grad():
        if kind == "ltc":
            ours = LTCCell(wiring)
            names = {"gleak_raw": "gleak", "cm_raw": "cm", "w_raw": "w", "sensory_w_raw": "sensory_w"}
            for name, _ in ours.named_parameters():
                getattr(ours, name).copy_(ref_cell._params[names.get(name, name)])
        else:
            ours = CfCCell(wiring)
            for a, b in zip(ref_cell._layers, ours.layers):
                b.weight.copy_(torch.cat([a.ff1.weight, a.ff2.weight, a.time_a.weight, a.time_b.weight]))
                b.bias.copy_(torch.cat([a.ff1.bias, a.ff2.bias, a.time_a.bias, a.time_b.bias]))
    return layer, ref_cell, ours, wiring


def max_difference(ref_cell, ours, steps: int = 50) -> float:
    """Largest output difference over ``steps`` steps with irregular dt (batch 1)."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1, steps, 32, generator=gen)
    dts = torch.rand(1, steps, 1, generator=gen) * 2 + 0.05
    h_ref = torch.zeros(1, ours.state_size)
    h = torch.zeros(1, ours.state_size)
    worst = 0.0
    with torch.no_grad():
        for t in range(steps):
            y_ref, h_ref = ref_cell(x[:, t], h_ref, float(dts[0, t, 0]))
            y, h = ours.step(x[:, t], h, dts[:, t])
            worst = max(worst, (y_ref - y[:, : y_ref.shape[1]]).abs().max().item())
    return worst


def trainer(module, forward, target):
    """One Adam step of ``module`` on the MSE between ``forward()`` and ``target``."""
    opt = torch.optim.Adam(module.parameters(), lr=1e-3)

    def train_step() -> None:
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(forward(), target)
        loss.backward()
        opt.step()

    return train_step


def measure(kind: str, repeats: int) -> dict[str, float]:
    """Single-step and training-step times of ncps' cell and ours, and their largest output difference."""
    layer, ref_cell, ours, _ = paired(kind)
    x1, h1, dt1 = torch.randn(1, 32), torch.zeros(1, ours.state_size), torch.ones(1, 1)
    with torch.inference_mode():
        ref_step = median_seconds(lambda: ref_cell(x1, h1, 1.0), repeats)
        our_step = median_seconds(lambda: ours.step(x1, h1, dt1), repeats)
    x, target = torch.randn(16, 32, 32), torch.randn(16, 32, 1)
    dt = torch.ones(16, 32, 1)
    ref_train = median_seconds(trainer(layer, lambda: layer(x)[0], target), max(5, repeats // 10))
    our_train = median_seconds(trainer(ours, lambda: ours(x, dt)[0][..., :1], target), max(5, repeats // 10))
    _, ref_cell, ours, _ = paired(kind)
    return {
        "step_us_ncps": ref_step * 1e6,
        "step_us_ours": our_step * 1e6,
        "step_speedup": ref_step / our_step,
        "train_ms_ncps": ref_train * 1e3,
        "train_ms_ours": our_train * 1e3,
        "train_speedup": ref_train / our_train,
        "max_abs_diff_50_steps": max_difference(ref_cell, ours),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200, help="timed single steps (training steps: repeats / 10)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    results: dict[str, dict[str, float]] = {}
    rows = []
    for kind in ("ltc", "cfc"):
        results[kind] = measure(kind, args.repeats)
        r = results[kind]
        rows.append((kind.upper() + "-NCP19", r["step_us_ncps"], r["step_us_ours"], r["step_speedup"],
                     r["train_ms_ncps"], r["train_ms_ours"], r["train_speedup"], r["max_abs_diff_50_steps"]))
    print(f"{'cell':<12}{'step ncps':>11}{'step ours':>11}{'x':>7}{'train ncps':>12}{'train ours':>12}{'x':>7}"
          f"{'max diff':>11}")
    print(f"{'':<12}{'(us)':>11}{'(us)':>11}{'':>7}{'(ms)':>12}{'(ms)':>12}{'':>7}{'':>11}")
    for name, rs, os_, sx, rt, ot, tx, d in rows:
        print(f"{name:<12}{rs:>11.0f}{os_:>11.0f}{sx:>7.2f}{rt:>12.1f}{ot:>12.1f}{tx:>7.2f}{d:>11.1e}")
    print("single step: batch 1, one thread, inference mode; train: batch 16 x 32 steps, forward+backward+Adam")
    figures = {f"{k}_{m}": v for k, r in results.items() for m, v in r.items()}
    print(json.dumps({"bench": "cells", "threads": 1, **figures}))


if __name__ == "__main__":
    main()

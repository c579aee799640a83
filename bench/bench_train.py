"""Training throughput (frames/s) of every core behind the conv head, fp32 and bf16 autocast, in one run.

The loop timed is the one ``lnn-control train`` runs (:func:`lnn_control.train.train_step`: forward over windows,
weighted MSE in normalised space, backward, gradient clipping, AdamW step) on cached data: synthetic uint8 frames
held in memory, 96x96, batches of 32 windows x 16 steps (512 frames), two torch threads unless told otherwise.
Beside it, the bare conv head's forward + backward on the same 512 frames (the floor every core sits on).
Augmentation is not part of the figure (it is measured apart, per batch). Prints a table; the last line is JSON.

    python bench/bench_train.py [--threads 2] [--steps 5] [--cores ltc cfc lstm cnn] [--precisions fp32 bf16]

bf16 autocast pays off on CPUs with AMX (Intel Sapphire Rapids and later); elsewhere it can be much slower than fp32.
The script prints which CPU capability torch found. On a shared machine the figures move with the other load.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import median_seconds  # noqa: E402  (bench/timing.py)

from lnn_control.nn.policy import Policy, PolicyConfig  # noqa: E402
from lnn_control.train import AugmentConfig, LossSpec, TrainConfig, augment_windows, autocast, train_step  # noqa: E402
from lnn_control.vision import PreprocessConfig  # noqa: E402


def batch(size: int, window: int, side: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (size, window, side, side, 3), dtype=torch.uint8, generator=g)
    dt = torch.full((size, window, 1), 0.05)
    targets = torch.randn(size, window, 2, generator=g) * torch.tensor([0.4, 0.3]) + torch.tensor([0.0, 1.0])
    return frames, dt, targets


def bench_core(core: str, precision: str, data, steps: int, warmup: int) -> float:
    """Seconds per training step of ``core`` at ``precision``."""
    side = data[0].shape[2]
    policy = Policy(PolicyConfig(core=core, preprocess=PreprocessConfig(side, side)))
    policy.train()
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-3)
    config = TrainConfig(precision=precision)
    loss = LossSpec.build(config, policy.config.outputs, torch.device("cpu"))
    return median_seconds(
        lambda: train_step(policy, policy, data, optimizer, loss, precision=precision, grad_clip=config.grad_clip),
        steps, warmup,
    )


def bench_head(precision: str, data, steps: int, warmup: int) -> float:
    """Seconds per forward + backward of the bare conv head on every frame of the batch."""
    side = data[0].shape[2]
    policy = Policy(PolicyConfig(core="cnn", preprocess=PreprocessConfig(side, side)))
    frames = data[0].reshape(-1, side, side, 3)

    def step():
        policy.encoder.zero_grad(set_to_none=True)
        with autocast(torch.device("cpu"), precision):
            out = policy.encoder(frames)
        out.float().square().mean().backward()

    return median_seconds(step, steps, warmup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per configuration (median)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32, help="windows per batch")
    parser.add_argument("--window", type=int, default=16)
    parser.add_argument("--side", type=int, default=96, help="input height = width")
    parser.add_argument("--cores", nargs="+", default=["ltc", "cfc", "lstm", "cnn"])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = batch(args.batch, args.window, args.side)
    frames_per_step = args.batch * args.window
    capability = torch.backends.cpu.get_cpu_capability()
    print(f"torch {torch.__version__}, {args.threads} threads, CPU capability {capability}, {platform.processor()}")
    print(f"{args.batch} windows x {args.window} steps = {frames_per_step} frames per step, {args.side}x{args.side}\n")
    results: dict[str, dict[str, float | str]] = {}
    rows = [("conv head fwd+bwd", "head", p, lambda p=p: bench_head(p, data, args.steps, args.warmup))
            for p in args.precisions]
    rows += [(core, core, p, lambda c=core, p=p: bench_core(c, p, data, args.steps, args.warmup))
             for core in args.cores for p in args.precisions]
    print(f"{'model':<18} {'precision':<9} {'ms/step':>9} {'frames/s':>9}")
    for name, tag, precision, fn in rows:
        key = f"{tag}_{precision}"
        try:
            seconds = fn()
        except RuntimeError as exc:  # e.g. an op without a bf16 kernel: report it, keep going
            results[key] = {"error": str(exc).splitlines()[0][:160]}
            print(f"{name:<18} {precision:<9} {'error':>9} {str(exc).splitlines()[0][:60]}")
            continue
        fps = frames_per_step / seconds
        results[key] = {"ms_per_step": round(seconds * 1e3, 1), "frames_per_s": round(fps, 1)}
        print(f"{name:<18} {precision:<9} {seconds * 1e3:9.1f} {fps:9.1f}", flush=True)
    g = torch.Generator().manual_seed(1)
    aug = median_seconds(lambda: augment_windows(data[0], AugmentConfig(), g), args.steps, 1)
    print(f"\naugmentation of one batch (not in the figures above): {aug * 1e3:.1f} ms")
    speedups = {}
    for core in args.cores:
        a, b = results.get(f"{core}_fp32", {}), results.get(f"{core}_bf16", {})
        if "frames_per_s" in a and "frames_per_s" in b:
            speedups[core] = round(b["frames_per_s"] / a["frames_per_s"], 2)
    if speedups:
        print("bf16 / fp32: " + ", ".join(f"{k} {v:.2f}x" for k, v in speedups.items()))
    print(json.dumps({
        "bench": "train_throughput", "threads": args.threads, "batch": args.batch, "window": args.window,
        "side": args.side, "cpu_capability": capability, "results": results, "bf16_speedup": speedups,
        "augment_ms_per_batch": round(aug * 1e3, 1),
    }))


if __name__ == "__main__":
    main()

"""Training throughput (frames/s) of every core behind the conv head, fp32 and bf16 autocast, augmentation off and on,
in one run.

The loop timed is the one ``lnn-control train`` runs: batches from :func:`lnn_control.train.batch_loader` (windows
collated and, on CPU, augmented by :class:`~lnn_control.train.EpochBatches`, in ``--workers`` DataLoader processes
that work ahead of the step) and :func:`lnn_control.train.train_step` (forward over windows, weighted MSE in
normalised space, backward, gradient clipping, AdamW step). The windows are synthetic uint8 frames held in memory,
96x96, batches of 32 windows x 16 steps (512 frames), two torch threads unless told otherwise. A step's time is
the interval between two finished steps, so waiting for the loader counts. Per core and precision:

- ``aug off``: the loader without augmentation;
- ``aug in-process``: augmentation in the training process (``training.workers: 0``), as before the workers did it;
- ``aug workers``: augmentation in the ``--workers`` loader processes, overlapping the step.

Beside them, the bare conv head's forward + backward on the same 512 frames (the floor every core sits on), with
its input in channels_last (as the head makes it: the uint8 NHWC frames permuted) and in NCHW, and the model's
weights in channels_last too; and the choice ``training.precision: auto`` makes here
(:func:`lnn_control.train.choose_precision`). Prints the tables; the last line is JSON. ``--quick`` is a smoke test
(the cfc core, two timed steps; its figures mean nothing).

    python bench/bench_train.py [--threads 2] [--workers 2] [--steps 5] [--cores ltc cfc lstm cnn]
        [--precisions fp32 bf16] [--quick]

bf16 autocast pays off on CPUs with AMX (Intel Sapphire Rapids and later) and, less, with AVX512-BF16; elsewhere it
can be much slower than fp32. The script prints torch's CPU capability and whether the CPU has AMX. On a shared
machine the figures move with the other load.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import median_seconds  # noqa: E402  (bench/timing.py)

from lnn_control.nn.policy import Policy, PolicyConfig  # noqa: E402
from lnn_control.train import (  # noqa: E402
    AugmentConfig,
    LossSpec,
    RunConfig,
    TrainConfig,
    augment_windows,
    autocast,
    batch_loader,
    choose_precision,
    train_step,
)
from lnn_control.vision import PreprocessConfig  # noqa: E402

CPU = torch.device("cpu")
MODES = ("aug off", "aug in-process", "aug workers")
#: Issue 16's goal: cfc, bf16, 96x96, batches of 32 x 16, augmentation on.
TARGET_FPS = 2500.0


class Windows(Dataset):
    """``count`` synthetic windows (uint8 frames, dt, targets) held in memory, as the cache's windows look."""

    def __init__(self, count: int, window: int, side: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.frames = torch.randint(0, 256, (count, window, side, side, 3), dtype=torch.uint8, generator=g)
        self.dt = torch.full((count, window, 1), 0.05)
        self.targets = torch.randn(count, window, 2, generator=g) * torch.tensor([0.4, 0.3]) + torch.tensor([0.0, 1.0])

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.frames[i], self.dt[i], self.targets[i]


def has_amx() -> bool:
    """Whether /proc/cpuinfo lists AMX tiles (Linux; False elsewhere)."""
    try:
        return "amx_tile" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def policy_of(core: str, side: int) -> Policy:
    return Policy(PolicyConfig(core=core, preprocess=PreprocessConfig(side, side))).train()


def bench_loop(core: str, precision: str, mode: str, windows: Windows, args: argparse.Namespace) -> float:
    """Median seconds between two finished training steps of ``core`` at ``precision``, batches as ``mode`` says."""
    policy = policy_of(core, args.side)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-3)
    config = RunConfig(
        training=TrainConfig(batch_size=args.batch, precision=precision, workers=args.workers if mode == MODES[2]
                             else 0, progress=False, tensorboard=False),
        augment=AugmentConfig(enabled=mode != MODES[0]),
    )
    loss = LossSpec.build(config.training, policy.config.outputs, CPU)
    steps = args.steps + args.warmup
    order = [i % len(windows) for i in range(steps * args.batch)]
    batches, loader = batch_loader(windows, order, config, 0, CPU)
    finished = [time.perf_counter()]
    for batch in loader:
        train_step(policy, policy, batch, optimizer, loss, precision=precision, grad_clip=config.training.grad_clip)
        finished.append(time.perf_counter())
    gaps = [b - a for a, b in zip(finished[:-1], finished[1:], strict=True)]
    assert len(gaps) == steps == len(batches)
    return statistics.median(gaps[args.warmup:])


def bench_head(precision: str, frames: torch.Tensor, layout: str, steps: int, warmup: int) -> float:
    """Seconds per forward + backward of the bare conv head on ``frames``: ``layout`` ``channels_last`` (the head's
    own: NHWC frames permuted), ``nchw`` (the input made contiguous first) or ``channels_last weights`` (the
    module converted too)."""
    side = frames.shape[1]
    head = policy_of("cnn", side).encoder
    if layout == "channels_last weights":
        head = head.to(memory_format=torch.channels_last)

    def step() -> None:
        head.zero_grad(set_to_none=True)
        with autocast(CPU, precision):
            x = head.normalise(frames)
            if layout == "nchw":
                x = x.contiguous()
            out = head.features_from_normalised(x)
        out.float().square().mean().backward()

    return median_seconds(step, steps, warmup)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the training process")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader processes of the 'aug workers' rows")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per configuration (median)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32, help="windows per batch")
    parser.add_argument("--window", type=int, default=16)
    parser.add_argument("--side", type=int, default=96, help="input height = width")
    parser.add_argument("--cores", nargs="+", default=["ltc", "cfc", "lstm", "cnn"])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--quick", action="store_true", help="smoke test: cfc only, 2 timed steps after 1")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.warmup, args.cores = 2, 1, ["cfc"]
    return args


def main() -> None:
    args = parse()
    torch.set_num_threads(args.threads)
    windows = Windows(2 * args.batch, args.window, args.side)
    frames_per_step = args.batch * args.window
    capability = torch.backends.cpu.get_cpu_capability()
    amx = has_amx()
    print(f"torch {torch.__version__}, {args.threads} threads, {args.workers} loader workers, CPU capability "
          f"{capability}, AMX {'yes' if amx else 'no'}, {platform.processor() or platform.machine()}")
    print(f"{args.batch} windows x {args.window} steps = {frames_per_step} frames per step, {args.side}x{args.side}\n")
    results: dict[str, dict[str, float | str]] = {}

    def record(key: str, label: str, precision: str, fn) -> None:
        try:
            seconds = fn()
        except RuntimeError as exc:  # e.g. an op without a bf16 kernel: report it, keep going
            results[key] = {"error": str(exc).splitlines()[0][:160]}
            print(f"{label:<40} {precision:<6} {'error':>9} {str(exc).splitlines()[0][:60]}")
            return
        fps = frames_per_step / seconds
        results[key] = {"ms_per_step": round(seconds * 1e3, 1), "frames_per_s": round(fps, 1)}
        print(f"{label:<40} {precision:<6} {seconds * 1e3:9.1f} {fps:9.1f}", flush=True)

    print(f"{'model':<40} {'prec':<6} {'ms/step':>9} {'frames/s':>9}")
    head_frames = windows.frames.reshape(-1, args.side, args.side, 3)[:frames_per_step]
    for layout in ("channels_last", "nchw", "channels_last weights"):
        for p in args.precisions:
            tag = layout.replace(" ", "_")
            record(f"head_{tag}_{p}", f"conv head fwd+bwd, {layout}", p,
                   lambda p=p, layout=layout: bench_head(p, head_frames, layout, args.steps, args.warmup))
    for core in args.cores:
        for p in args.precisions:
            for mode in MODES:
                record(f"{core}_{p}_{mode.replace(' ', '_').replace('-', '_')}", f"{core}, {mode}", p,
                       lambda c=core, p=p, m=mode: bench_loop(c, p, m, windows, args))

    g = torch.Generator().manual_seed(1)
    first = (windows.frames[: args.batch], windows.dt[: args.batch], windows.targets[: args.batch])
    aug = median_seconds(lambda: augment_windows(first[0], AugmentConfig(), g), args.steps, 1)
    print(f"\naugmentation of one batch alone, in this process: {aug * 1e3:.1f} ms")
    choice, seconds = choose_precision(policy_of("cfc", args.side), first, CPU)
    print(f"training.precision auto would choose {choice} here (cfc forward + backward: fp32 "
          f"{seconds['fp32'] * 1e3:.0f} ms, bf16 {seconds['bf16'] * 1e3:.0f} ms)")
    speedups: dict[str, float] = {}
    for core in args.cores:
        for mode in MODES:
            tag = mode.replace(" ", "_").replace("-", "_")
            a, b = results.get(f"{core}_fp32_{tag}", {}), results.get(f"{core}_bf16_{tag}", {})
            if "frames_per_s" in a and "frames_per_s" in b:
                speedups[f"{core}_{tag}"] = round(float(b["frames_per_s"]) / float(a["frames_per_s"]), 2)
    if speedups:
        print("bf16 / fp32: " + ", ".join(f"{k} {v:.2f}x" for k, v in speedups.items()))
    goal = results.get("cfc_bf16_aug_workers", {})
    target = {"core": "cfc", "precision": "bf16", "mode": "aug workers", "frames_per_s": TARGET_FPS,
              "met": float(goal.get("frames_per_s", 0.0)) >= TARGET_FPS}
    print(json.dumps({
        "bench": "train_throughput", "quick": args.quick, "threads": args.threads, "workers": args.workers,
        "batch": args.batch, "window": args.window, "side": args.side, "steps": args.steps,
        "cpu_capability": capability, "amx": amx, "results": results, "bf16_speedup": speedups,
        "auto_precision": choice, "auto_seconds": {k: round(v, 4) for k, v in seconds.items()},
        "augment_ms_per_batch": round(aug * 1e3, 1), "target": target,
    }))


if __name__ == "__main__":
    main()

"""Single-step latency of the exported policy (TorchScript, ONNX Runtime) beside PyTorch eager, in one run.

Batch 1, one thread, the full step (conv head + recurrent core) on a 96x96 frame. Prints a table; the last line is
JSON with the medians and the ratios to PyTorch eager.

    python bench/bench_export.py [--model models/NAME] [--core ltc] [--repeats 300]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lnn_control.nn import checkpoint  # noqa: E402
from lnn_control.nn.export import example_inputs, to_onnx, to_torchscript  # noqa: E402
from lnn_control.nn.policy import Policy, PolicyConfig  # noqa: E402


def median_us(fn, repeats: int) -> float:
    """Median microseconds of ``fn`` after a warm-up."""
    for _ in range(20):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="checkpoint; default: an untrained policy of --core (same cost)")
    parser.add_argument("--core", default="ltc", choices=("ltc", "cfc", "lstm", "cnn"))
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)
    import onnxruntime as ort

    policy = checkpoint.load(args.model) if args.model else Policy(PolicyConfig(core=args.core)).eval()
    frame, state, dt = example_inputs(policy)
    with tempfile.TemporaryDirectory() as tmp:
        scripted = torch.jit.load(str(to_torchscript(policy, Path(tmp) / "p.pt")))
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(to_onnx(policy, Path(tmp) / "p.onnx")), options)
    names = {i.name for i in session.get_inputs()}
    feed = {k: v for k, v in {"frame": frame.numpy(), "state": state.numpy(), "dt": dt.numpy()}.items() if k in names}
    with torch.inference_mode():
        eager = median_us(lambda: policy.act(frame, state, dt), args.repeats)
        script = median_us(lambda: scripted(frame, state, dt), args.repeats)
    onnx = median_us(lambda: session.run(None, feed), args.repeats)
    name = args.model or f"untrained {args.core}"
    print(f"single step of {name} ({policy.config.preprocess.height}x{policy.config.preprocess.width}), batch 1, "
          "one thread")
    print(f"{'runtime':<22}{'median (us)':>12}{'vs eager':>10}")
    for label, value in (("PyTorch eager", eager), ("TorchScript", script), ("ONNX Runtime", onnx)):
        print(f"{label:<22}{value:>12.0f}{eager / value:>9.2f}x")
    print(json.dumps({"bench": "export", "model": name, "eager_us": eager, "torchscript_us": script,
                      "onnxruntime_us": onnx, "torchscript_speedup": eager / script, "onnx_speedup": eager / onnx}))


if __name__ == "__main__":
    main()

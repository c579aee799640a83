"""Single-step latency of the exported policy (TorchScript, ONNX Runtime) beside PyTorch eager, in one run.

Batch 1, one thread, the full step (conv head + recurrent core) on a 96x96 frame. Prints a table; the last line is
JSON with the medians and the ratios to PyTorch eager.

    python bench/bench_export.py [--model models/NAME] [--core ltc] [--repeats 300]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import median_seconds  # noqa: E402  (bench/timing.py)

from lnn_control.nn import checkpoint  # noqa: E402
from lnn_control.nn.export import example_inputs, to_onnx, to_torchscript  # noqa: E402
from lnn_control.nn.policy import Policy, PolicyConfig  # noqa: E402


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
        eager = 1e6 * median_seconds(lambda: policy.act(frame, state, dt), args.repeats, 20)
        script = 1e6 * median_seconds(lambda: scripted(frame, state, dt), args.repeats, 20)
    onnx = 1e6 * median_seconds(lambda: session.run(None, feed), args.repeats, 20)
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

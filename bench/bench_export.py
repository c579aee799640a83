"""Single-step latency of the exported policy (TorchScript, ONNX Runtime) beside PyTorch eager and the Driver on
each backend, in one run.

Batch 1, one thread, the full step (conv head + recurrent core) on a 96x96 frame. The Driver rows are what the nodes
run per frame: ``Driver.observe`` on a frame already at the model's size (copy into its buffer, encoder, core step
with the dt rule, limits) on ``torch`` and on ``onnxruntime`` (its two graphs). Prints a table; the last line is
JSON with the medians and the ratios to PyTorch eager. ``--quick`` is a smoke test (30 repeats).

    python bench/bench_export.py [--model models/NAME] [--core ltc] [--repeats 300] [--quick]
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

from lnn_control.driver import Driver  # noqa: E402
from lnn_control.nn import checkpoint  # noqa: E402
from lnn_control.nn.export import example_inputs, to_onnx, to_torchscript  # noqa: E402
from lnn_control.nn.policy import Policy, PolicyConfig  # noqa: E402


def driver_step_us(policy: Policy, backend: str, frame, repeats: int) -> tuple[float, str]:
    """Median microseconds of ``Driver.observe`` on ``backend`` (frames 33 ms apart), and the backend it ran."""
    driver = Driver(policy, backend=backend, warn=lambda message: print(message, file=sys.stderr))
    stamp = [0]

    def step() -> None:
        stamp[0] += 33_000_000
        driver.observe(frame, stamp[0])

    return 1e6 * median_seconds(step, repeats, 20), driver.backend.name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="checkpoint; default: an untrained policy of --core (same cost)")
    parser.add_argument("--core", default="ltc", choices=("ltc", "cfc", "lstm", "cnn"))
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="smoke test: 30 repeats")
    args = parser.parse_args()
    if args.quick:
        args.repeats = 30
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
    drivers = {}
    for backend in ("torch", "onnxruntime"):
        drivers[backend] = driver_step_us(policy, backend, frame[0].numpy(), args.repeats)
    name = args.model or f"untrained {args.core}"
    print(f"single step of {name} ({policy.config.preprocess.height}x{policy.config.preprocess.width}), batch 1, "
          "one thread")
    print(f"{'runtime':<22}{'median (us)':>12}{'vs eager':>10}")
    rows = [("PyTorch eager", eager), ("TorchScript", script), ("ONNX Runtime", onnx)]
    rows += [(f"Driver ({backend})", us) for backend, (us, _) in drivers.items()]
    for label, value in rows:
        print(f"{label:<22}{value:>12.0f}{eager / value:>9.2f}x")
    fallback = [b for b, (_, used) in drivers.items() if used != b]
    if fallback:
        print(f"the Driver fell back to torch for: {', '.join(fallback)}")
    print(json.dumps({"bench": "export", "model": name, "repeats": args.repeats, "eager_us": eager,
                      "torchscript_us": script, "onnxruntime_us": onnx, "torchscript_speedup": eager / script,
                      "onnx_speedup": eager / onnx, "driver_torch_us": drivers["torch"][0],
                      "driver_onnxruntime_us": drivers["onnxruntime"][0],
                      "driver_onnxruntime_backend": drivers["onnxruntime"][1],
                      "driver_onnx_speedup": eager / drivers["onnxruntime"][0]}))


if __name__ == "__main__":
    main()

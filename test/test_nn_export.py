"""Export: TorchScript and ONNX match PyTorch to 1e-5 over 200 steps with irregular dt."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lnn_control.nn.export import to_onnx, to_torchscript
from lnn_control.nn.policy import Policy, PolicyConfig
from lnn_control.vision import PreprocessConfig

ort = pytest.importorskip("onnxruntime", reason="onnxruntime is in the [dev] and [export] extras")


@pytest.mark.parametrize("core", ["ltc", "cfc", "lstm"])
def test_exported_single_step_matches_pytorch(tmp_path: Path, core: str) -> None:
    policy = Policy(PolicyConfig(core=core, preprocess=PreprocessConfig(56, 64), seed=1)).eval()
    scripted = torch.jit.load(str(to_torchscript(policy, tmp_path / "p.pt")))
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(to_onnx(policy, tmp_path / "p.onnx")), options)
    inputs = {i.name for i in session.get_inputs()}
    assert {"frame", "state"} <= inputs and ("dt" in inputs) == (core != "lstm")  # the LSTM ignores dt
    gen = torch.Generator().manual_seed(0)
    base = torch.randint(0, 256, (1, 56, 64, 3), dtype=torch.uint8, generator=gen)
    h_ref = h_ts = policy.initial_state(1)
    h_onnx = h_ref.numpy()
    worst_ts = worst_onnx = 0.0
    with torch.no_grad():
        for _ in range(200):
            frame = (base.int() + torch.randint(-20, 21, base.shape, generator=gen)).clamp(0, 255).to(torch.uint8)
            dt = torch.rand(1, 1, generator=gen) * 0.15 + 0.005
            y_ref, h_ref = policy.act(frame, h_ref, dt)
            y_ts, h_ts = scripted(frame, h_ts, dt)
            feed = {"frame": frame.numpy(), "state": h_onnx, "dt": dt.numpy()}
            y_onnx, h_onnx = session.run(None, {k: v for k, v in feed.items() if k in inputs})
            worst_ts = max(worst_ts, (y_ref - y_ts).abs().max().item())
            worst_onnx = max(worst_onnx, float(np.abs(y_ref.numpy() - y_onnx).max()))
    assert worst_ts < 1e-5 and worst_onnx < 1e-5
    assert not torch.equal(h_ref, policy.initial_state(1))  # the state really evolved

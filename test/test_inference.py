"""The Driver's network on ONNX Runtime: the same commands as PyTorch, and torch when the graphs do not agree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime", reason="onnxruntime is in the [dev] and [export] extras")

from lnn_control.driver import Driver, DriverConfig  # noqa: E402
from lnn_control.inference import (  # noqa: E402
    OnnxBackend,
    TorchBackend,
    cache_dir,
    make_backend,
    mismatch,
    relative_gap,
    weights_hash,
)
from lnn_control.nn import checkpoint  # noqa: E402
from lnn_control.nn.policy import CORES, Policy, PolicyConfig  # noqa: E402
from lnn_control.vision import PreprocessConfig  # noqa: E402

MS = 1_000_000
MODELS = sorted((Path(__file__).resolve().parents[1] / "models").glob("*.safetensors"))


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LNN_CONTROL_CACHE", str(tmp_path / "cache"))


def policy_of(core: str, action: str = "car") -> Policy:
    return Policy(PolicyConfig(core=core, features=16, preprocess=PreprocessConfig(64, 64), action=action,
                               seed=5)).eval()


@pytest.mark.parametrize("core", CORES)
def test_onnxruntime_drives_like_torch_over_an_irregular_sequence(core):
    policy = policy_of(core, "drone" if core == "cfc" else "car")
    config = DriverConfig(limits={"velocity.max": 100.0, "velocity.min": -100.0})
    warnings: list[str] = []
    fast = Driver(policy, config, backend="onnxruntime", warn=warnings.append)
    plain = Driver(policy, config)
    assert isinstance(fast.backend, OnnxBackend) and isinstance(plain.backend, TorchBackend), warnings
    rng = np.random.default_rng(1)
    stamp = 0
    for k in range(200):
        stamp += int(rng.choice([5, 20, 50, 130, 400])) * MS if k else 0
        if k == 120:
            stamp += 3_000 * MS  # a gap: both reset
        frame = rng.integers(0, 256, (80, 90, 3), dtype=np.uint8)
        a, b = fast.observe(frame, stamp), plain.observe(frame, stamp)
        assert a.schema == b.schema and np.allclose(a.values, b.values, atol=1e-5, rtol=0), (k, a, b)
        assert fast.last.dt_s == plain.last.dt_s and fast.last.event == plain.last.event
        assert np.allclose(fast.activity, plain.activity, atol=1e-5, rtol=0)
    assert not [w for w in warnings if "onnxruntime" in w]


def test_large_features_are_compared_at_their_own_scale():
    """A trained conv head's features reach hundreds (both shipped models'), where float32 rounding alone leaves
    absolute gaps of 1e-4 between the runtimes: the check judges each value against its own scale."""
    policy = policy_of("ltc")
    with torch.no_grad():
        policy.encoder.reduce.weight.mul_(3000.0)
        policy.encoder.reduce.bias.mul_(3000.0)
    said: list[str] = []
    backend = make_backend(policy, "onnxruntime", warn=said.append)
    assert isinstance(backend, OnnxBackend), said
    frame = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert np.abs(TorchBackend(policy).encode(frame)).max() > 100.0
    assert mismatch(policy, backend) < 1e-5
    assert relative_gap(np.array([500.5]), np.array([500.0])) == pytest.approx(1e-3)
    assert relative_gap(np.array([0.25]), np.array([0.5])) == pytest.approx(0.25), "below 1: absolute"
    assert relative_gap(np.zeros(0), np.zeros(0)) == 0.0


@pytest.mark.parametrize("weights", MODELS, ids=lambda p: p.stem)
def test_the_shipped_models_run_on_onnxruntime(weights):
    policy = checkpoint.load(weights.with_suffix("")).eval()
    said: list[str] = []
    assert isinstance(make_backend(policy, "onnxruntime", warn=said.append), OnnxBackend), said


def test_the_graphs_are_cached_by_the_weights_and_a_mismatch_falls_back_to_torch():
    policy = policy_of("ltc")
    make_backend(policy, "onnxruntime")
    folder = cache_dir() / weights_hash(policy)
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert set(stamps) == {"encoder.onnx", "step.onnx"}
    assert isinstance(make_backend(policy, "onnxruntime"), OnnxBackend)
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps, "loaded again, not re-exported"
    other = policy_of("ltc")
    other.target_mean.add_(1.0)
    assert weights_hash(other) != weights_hash(policy), "other weights, other graphs"
    said: list[str] = []
    backend = make_backend(policy, "onnxruntime", warn=said.append, tolerance=-1.0)  # nothing can be that close
    assert isinstance(backend, TorchBackend)
    assert len(said) == 1 and "differs from torch" in said[0] and "running torch" in said[0]
    with pytest.raises(ValueError, match="backend 'tensorrt'"):
        make_backend(policy, "tensorrt")
